// cnclip zero-shot: classify a folder-per-class image set with prompt templates; prints top-1/top-5 accuracy as JSON.
using System.CommandLine;
using System.Text.Json;
using ChineseClip.Model;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using ChineseClip.Training;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class ZeroShotCommand
{
    public static Command Create(CliIO io)
    {
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "official .pt or HF safetensors", Required = true };
        var arch = new Option<string>("--arch") { Description = "VISION@TEXT or a merged architecture .json", Required = true };
        var vocab = new Option<FileInfo>("--vocab") { Description = "vocab.txt of the text tower", Required = true };
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "one sub-folder per class (the folder name is the class name) holding its images", Required = true };
        var templates = new Option<FileInfo?>("--templates") { Description = "prompt templates, one per line with {} for the class name (default: the official zero-shot set, 183 Chinese prompts)" };
        var batchSize = new Option<int>("--batch-size") { Description = "images per forward pass", DefaultValueFactory = _ => 64 };
        var output = new Option<FileInfo?>("--output") { Description = "also write per-image predictions (JSONL)" };
        var command = new Command("zero-shot", "Zero-shot classification of a folder-per-class image set.")
        {
            checkpoint, arch, vocab, dataDir, templates, batchSize, output,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            var dir = r.GetValue(dataDir)!;
            if (!dir.Exists) throw new CliException($"{dir.FullName}: data folder not found");
            var classes = dir.GetDirectories().Select(d => d.Name).Order(StringComparer.Ordinal).ToList();
            if (classes.Count < 2) throw new CliException($"{dir.FullName}: needs at least two class sub-folders, found {classes.Count}");
            IReadOnlyList<string> prompts;
            try
            {
                prompts = r.GetValue(templates) is { } t ? PromptTemplates.Parse(File.ReadLines(t.FullName), t.FullName) : ZeroShot.DefaultTemplates;
            }
            catch (Exception e) when (e is FormatException or IOException)
            {
                throw new CliException(e.Message);
            }
            int batch = r.GetValue(batchSize);
            if (batch < 1) throw new CliException($"--batch-size {batch}: must be at least 1");

            ClipConfig config = Architectures.Resolve(r.GetValue(arch)!);
            var tokenizer = ClipTokenizer.FromVocabFile(r.GetValue(vocab)!.FullName);
            using var model = ClipModel.Load(config, r.GetValue(checkpoint)!.FullName);
            model.eval();
            using var _ = no_grad();
            using var classVectors = ZeroShot.ClassVectors(model, tokenizer, classes, prompts, ClipTokenizer.DefaultContextLength);

            var transform = new ImageTransform(config.ImageResolution);
            var files = classes.SelectMany((c, i) => Directory.GetFiles(Path.Combine(dir.FullName, c)).Order(StringComparer.Ordinal).Select(f => (File: f, Class: i))).ToList();
            var kept = new List<(string File, int Class)>();
            var features = new List<Tensor>();
            int rejected = 0;
            foreach (var chunk in files.Chunk(batch))
            {
                var pixels = new List<float[]>();
                foreach (var (file, cls) in chunk)
                {
                    try
                    {
                        pixels.Add(transform.ToPixels(File.ReadAllBytes(file)));
                        kept.Add((file, cls));
                    }
                    catch (InvalidImageException e)
                    {
                        io.Error.WriteLine($"cnclip: error: {file}: {e.Message}");
                        rejected++;
                    }
                }
                if (pixels.Count == 0) continue;
                using var input = tensor(pixels.SelectMany(p => p).ToArray(), [pixels.Count, 3, config.ImageResolution, config.ImageResolution]);
                features.Add(ClipModel.Normalize(model.EncodeImage(input)));
            }
            if (kept.Count == 0) throw new CliException($"{dir.FullName}: no readable images");
            using var all = cat(features, 0);
            var (top1, top5, predicted) = ZeroShot.Score(all, classVectors, kept.Select(k => k.Class).ToList());
            if (r.GetValue(output) is { } o)
                File.WriteAllLines(o.FullName, kept.Select((k, i) => JsonSerializer.Serialize(new { file = k.File, label = classes[k.Class], predicted = classes[predicted[i]] })));
            io.Out.WriteLine(JsonSerializer.Serialize(new { images = kept.Count, classes = classes.Count, top1, top5, rejected }));
            return rejected == 0 ? ExitCodes.Success : ExitCodes.BadInput;
        }));
        return command;
    }
}
