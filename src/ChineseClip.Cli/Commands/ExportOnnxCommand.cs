// cnclip export-onnx: writes image.onnx and text.onnx (ONNX graphs of the two towers with the checkpoint's weights,
// dynamic batch and token length) for deployment with ONNX Runtime, TensorRT or Triton.
using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using ChineseClip.Model;
using ChineseClip.Model.Text;
using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Graph;

namespace ChineseClip.Cli.Commands;

public static class ExportOnnxCommand
{
    public static Command Create(CliIO io)
    {
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "official .pt, plain state dict, or (official or Hugging Face) .safetensors", Required = true };
        var arch = new Option<string>("--arch") { Description = "VISION@TEXT or a merged architecture .json", Required = true };
        var output = new Option<DirectoryInfo>("--output") { Description = "folder for image.onnx and text.onnx", Required = true };
        var precision = new Option<string>("--precision") { Description = "fp32, or fp16 (weights and compute; inputs and outputs stay float32)", DefaultValueFactory = _ => "fp32" };
        precision.AcceptOnlyFromAmong("fp32", "fp16");
        var opset = new Option<int>("--opset") { Description = $"ONNX opset, {OnnxOpsets.Min} to {OnnxOpsets.Max}", DefaultValueFactory = _ => OnnxOpsets.Default };
        var towers = new Option<string>("--towers") { Description = "which towers: image,text (default), image or text", DefaultValueFactory = _ => "image,text" };
        var force = new Option<bool>("--force") { Description = "replace existing files" };
        var vocab = new Option<FileInfo?>("--vocab") { Description = "the text tower's vocab.txt, whose SHA-256 goes into the metadata (default: the official vocab, for vocab_size 21128)" };
        var context = new Option<int>("--context-length") { Description = "text length with [CLS] and [SEP] recorded in the metadata", DefaultValueFactory = _ => ClipTokenizer.DefaultContextLength };
        var command = new Command("export-onnx", "Export the image and text towers as ONNX graphs (dynamic batch and length, features normalised and not).")
        {
            checkpoint, arch, output, precision, opset, towers, force, vocab, context,
        };
        command.SetAction(r => CliApp.Guard(io, () => Run(io, r.GetValue(checkpoint)!, r.GetValue(arch)!, r.GetValue(output)!, r.GetValue(precision)!,
            r.GetValue(opset), r.GetValue(towers)!, r.GetValue(force), r.GetValue(vocab), r.GetValue(context))));
        return command;
    }

    static int Run(CliIO io, FileInfo checkpoint, string archName, DirectoryInfo output, string precision, int opset, string towers,
        bool force, FileInfo? vocab, int contextLength)
    {
        // Everything that can be checked before the checkpoint is read is checked first.
        if (opset < OnnxOpsets.Min || opset > OnnxOpsets.Max)
            throw new CliException($"--opset {opset}: not supported (minimum {OnnxOpsets.Min}, maximum {OnnxOpsets.Max}, default {OnnxOpsets.Default})");
        var chosen = towers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (chosen.Length == 0 || chosen.Any(t => t is not ("image" or "text")))
            throw new CliException($"--towers {towers}: expected image, text or image,text");
        if (!checkpoint.Exists) throw new CliException($"{checkpoint.FullName}: checkpoint not found");
        ClipConfig config = Architectures.Resolve(archName);
        if (contextLength < 3 || contextLength > config.TextMaxPositionEmbeddings)
            throw new CliException($"--context-length {contextLength}: must be 3 to {config.TextMaxPositionEmbeddings} (text_max_position_embeddings of {config.Name})");
        string vocabSha256 = VocabHash(vocab, config);
        var options = new OnnxExportOptions
        {
            Precision = precision == "fp16" ? OnnxPrecision.Fp16 : OnnxPrecision.Fp32,
            Opset = opset,
            Image = chosen.Contains("image"),
            Text = chosen.Contains("text"),
            ContextLength = contextLength,
            VocabSha256 = vocabSha256,
            Checkpoint = checkpoint.Name,
            CheckpointSha256 = Sha256(checkpoint.FullName),
            Overwrite = force,
        };
        if (!force)
        {
            // Before the (slow) load; the exporter checks again.
            foreach (string file in (options.Image ? [TowerGraphs.ImageFile] : Array.Empty<string>()).Concat(options.Text ? [TowerGraphs.TextFile] : []))
            {
                string path = Path.Combine(output.FullName, file);
                if (File.Exists(path)) throw new CliException($"{path} exists (use --force to replace it)");
            }
        }

        var watch = Stopwatch.StartNew();
        using var model = ClipModel.Load(config, checkpoint.FullName);
        model.eval();
        var written = OnnxExporter.Export(model, output.FullName, options);
        foreach (string path in written)
            io.Error.WriteLine($"{path}: {new FileInfo(path).Length / (1024.0 * 1024.0):F1} MiB");
        io.Error.WriteLine($"{config.Name} exported ({precision}, opset {opset}) in {watch.Elapsed.TotalSeconds:F1} s");
        return ExitCodes.Success;
    }

    static string VocabHash(FileInfo? vocab, ClipConfig config)
    {
        if (vocab is null)
        {
            if (config.VocabSize != 21128)
                throw new CliException($"--vocab is needed: {config.Name} has vocab_size {config.VocabSize}, not the official vocab's 21128");
            return OnnxMetadata.OfficialVocabSha256;
        }
        if (!vocab.Exists) throw new CliException($"{vocab.FullName}: vocab file not found");
        int lines = ClipTokenizer.FromVocabFile(vocab.FullName).VocabSize;
        if (lines != config.VocabSize)
            throw new CliException($"{vocab.FullName}: {lines} tokens, but {config.Name} has vocab_size {config.VocabSize}");
        return Sha256(vocab.FullName);
    }

    internal static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
