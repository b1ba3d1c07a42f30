using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class TokenizeCommandTests
{
    static readonly string Vocab = SharedFiles.Path("reference", "vocab.txt");

    [Fact]
    public void Tokenize_gives_the_official_ids_for_every_case_in_order()
    {
        var cases = File.ReadAllLines(SharedFiles.Path("fixtures", "tokenizer_cases.jsonl"));
        string input = string.Join('\n', cases.Select(l => JsonSerializer.Serialize(new { text = JsonDocument.Parse(l).RootElement.GetProperty("text").GetString() })));
        var r = CliRunner.RunWithInput(input, "tokenize", "--vocab", Vocab);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(cases.Length, r.OutLines.Length);
        for (int i = 0; i < cases.Length; i++)
        {
            var expected = JsonDocument.Parse(cases[i]).RootElement;
            var actual = JsonDocument.Parse(r.OutLines[i]).RootElement;
            Assert.Equal(expected.GetProperty("text").GetString(), actual.GetProperty("text").GetString());
            Assert.Equal(expected.GetProperty("ids").EnumerateArray().Select(x => x.GetInt64()), actual.GetProperty("ids").EnumerateArray().Select(x => x.GetInt64()));
        }
    }

    [Fact]
    public void Tokenize_reads_an_input_file_and_honours_the_context_length()
    {
        string file = Path.GetTempFileName();
        File.WriteAllText(file, "{\"text\": \"一条白色的小狗\"}\n");
        var r = CliRunner.Run("tokenize", "--vocab", Vocab, "--input", file, "--context-length", "5");
        File.Delete(file);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("{\"text\":\"一条白色的小狗\",\"ids\":[101,671,3340,4635,102]}", r.OutLines.Single());
    }

    [Fact]
    public void A_bad_line_is_named_and_the_other_lines_still_come_out()
    {
        var r = CliRunner.RunWithInput("{\"text\": \"狗\"}\nnot json\n{\"txt\": 1}\n{\"text\": \"猫\"}\n", "tokenize", "--vocab", Vocab, "--context-length", "4");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal(2, r.OutLines.Length);
        var errors = r.Error.TrimEnd('\n').Split('\n');
        Assert.StartsWith("cnclip: error: <stdin>:2: invalid JSON", errors[0]);
        Assert.Equal("cnclip: error: <stdin>:3: expected a JSON object with a string field \"text\"", errors[1]);
    }

    [Fact]
    public void A_missing_vocab_is_one_line_naming_the_file()
    {
        var r = CliRunner.RunWithInput("", "tokenize", "--vocab", "/nonexistent/vocab.txt");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.Contains("/nonexistent/vocab.txt", r.Error);
    }
}
