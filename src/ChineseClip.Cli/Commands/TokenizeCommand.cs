// cnclip tokenize: JSONL {"text"} in, JSONL {"text", "ids"} out, exactly the official tokenize(text, N).
using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ChineseClip.Model.Text;

namespace ChineseClip.Cli.Commands;

public static class TokenizeCommand
{
    static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(CliIO io)
    {
        var vocab = new Option<FileInfo>("--vocab") { Description = "vocab.txt of the text tower", Required = true };
        var contextLength = new Option<int>("--context-length")
        {
            Description = "sequence length: [CLS] + up to N-2 pieces + [SEP], padded with 0",
            DefaultValueFactory = _ => ClipTokenizer.DefaultContextLength,
        };
        var input = new Option<FileInfo?>("--input") { Description = "JSONL file of {\"text\": ...} lines (default: stdin)" };
        var command = new Command("tokenize", "Turn texts into token ids exactly as the official tokenize() does.")
        {
            vocab, contextLength, input,
        };
        command.SetAction(r => CliApp.Guard(io, () => Run(io, r.GetValue(vocab)!, r.GetValue(contextLength), r.GetValue(input))));
        return command;
    }

    static int Run(CliIO io, FileInfo vocabFile, int contextLength, FileInfo? inputFile)
    {
        if (contextLength < 3) throw new CliException($"--context-length {contextLength}: must be at least 3 ([CLS], one piece, [SEP])");
        var tokenizer = ClipTokenizer.FromVocabFile(vocabFile.FullName);
        string source = inputFile?.FullName ?? "<stdin>";
        using TextReader reader = inputFile is null ? io.In : OpenText(inputFile);
        int lineNumber = 0, rejected = 0;
        for (string? line; (line = reader.ReadLine()) != null;)
        {
            lineNumber++;
            if (line.Length == 0) continue;
            string? text = ReadText(line, out string? problem);
            if (text is null)
            {
                io.Error.WriteLine($"cnclip: error: {source}:{lineNumber}: {problem}");
                rejected++;
                continue;
            }
            var output = new JsonObject { ["text"] = text, ["ids"] = new JsonArray(tokenizer.Tokenize(text, contextLength).Select(i => (JsonNode)i).ToArray()) };
            io.Out.WriteLine(output.ToJsonString(Relaxed));
        }
        io.Out.Flush();
        return rejected == 0 ? ExitCodes.Success : ExitCodes.BadInput;
    }

    static TextReader OpenText(FileInfo file)
    {
        if (!file.Exists) throw new CliException($"{file.FullName}: input file not found");
        return new StreamReader(file.FullName, new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true));
    }

    static string? ReadText(string line, out string? problem)
    {
        problem = null;
        try
        {
            if (JsonNode.Parse(line) is JsonObject o && o["text"] is JsonValue v && v.TryGetValue(out string? text)) return text;
            problem = "expected a JSON object with a string field \"text\"";
        }
        catch (JsonException e)
        {
            problem = $"invalid JSON: {e.Message}";
        }
        return null;
    }
}
