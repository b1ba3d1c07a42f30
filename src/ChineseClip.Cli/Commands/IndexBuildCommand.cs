// cnclip index build: embeds a folder of images (captions from same-name .txt files) or an official {split}_imgs.tsv
// (captions from {split}_texts.jsonl) into a search collection. A rerun adds only what is missing; an image that
// cannot be used is listed with its reason and skipped.
using System.CommandLine;
using ChineseClip.Model.Text;
using ChineseClip.Search;
using TorchSharp;

namespace ChineseClip.Cli.Commands;

public static class IndexBuildCommand
{
    public static Command Create(CliIO io)
    {
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "official .pt, plain state dict, or .safetensors", Required = true };
        var arch = new Option<string>("--arch") { Description = "VISION@TEXT or a merged architecture .json", Required = true };
        var vocab = new Option<FileInfo>("--vocab") { Description = "vocab.txt of the text tower", Required = true };
        var images = new Option<string>("--images") { Description = "a folder of images (captions from same-name .txt files) or an official {split}_imgs.tsv", Required = true };
        var texts = new Option<FileInfo?>("--texts") { Description = "{split}_texts.jsonl with the tsv's captions (default: the one beside the tsv)" };
        var output = new Option<DirectoryInfo>("--output") { Description = "the collection folder (its name is the folder's name)", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "images per forward pass", DefaultValueFactory = _ => 32 };
        var threads = new Option<int>("--threads") { Description = "threads for decoding, the model and the index (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var contextLength = new Option<int>("--context-length") { Description = "text length with [CLS] and [SEP]", DefaultValueFactory = _ => ClipTokenizer.DefaultContextLength };
        var backend = new Option<string>("--backend") { Description = "onnx (ONNX Runtime, 3x TorchSharp's images/s on a CPU; the checkpoint is exported once into a cache unless --onnx is given) or torch (TorchSharp)", DefaultValueFactory = _ => ClipEncoders.Onnx }
            .AcceptOnlyFromAmongFluent(ClipEncoders.Backends);
        var onnx = new Option<DirectoryInfo?>("--onnx") { Description = "with --backend onnx: an export of the checkpoint by cnclip export-onnx" };
        var command = new Command("build", "Embed images and captions into a search collection (adds what is missing).")
        {
            checkpoint, arch, vocab, images, texts, output, batchSize, threads, contextLength, backend, onnx,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            int batch = r.GetValue(batchSize), t = r.GetValue(threads);
            if (batch < 1) throw new CliException($"--batch-size {batch}: must be at least 1");
            if (t < 1) throw new CliException($"--threads {t}: must be at least 1");
            string dir = r.GetValue(output)!.FullName;
            Model.Runtime.TorchCpu.SetThreads(t);
            var model = ModelInfo.Of(r.GetValue(checkpoint)!.FullName, r.GetValue(arch)!, r.GetValue(vocab)!.FullName, r.GetValue(contextLength));
            string chosen = r.GetValue(backend)!;
            if (r.GetValue(onnx) is not null && chosen != ClipEncoders.Onnx) throw new CliException("--onnx is for --backend onnx");
            var settings = new EncoderSettings(OnnxExport: r.GetValue(onnx)?.FullName, Threads: t);
            using var embedder = ClipEmbedder.Load(model, chosen, checkSha256: false, settings: settings);
            int rejected = 0;
            void Reject(string problem)
            {
                rejected++;
                io.Error.WriteLine($"cnclip: error: {problem}");
            }
            var sources = ImageSources.Open(r.GetValue(images)!, r.GetValue(texts)?.FullName, Reject);
            using var current = CollectionFiles.Exists(dir) ? CollectionVersion.Open(dir) : null;
            var result = CliProgress.For(io).Run("images", sources.Count, progress => CollectionBuilder.Add(dir, Path.GetFileName(dir), embedder,
                sources, new BuildOptions { BatchSize = batch, Threads = t }, Reject, done => progress.Report(new(done)), current));
            var manifest = result.Manifest ?? current!.Manifest;
            io.Error.WriteLine($"{dir}: {result.Added} images added, {result.AlreadyThere} already there, {rejected} rejected; " +
                $"{manifest.Count} images and {manifest.Texts} captions (version {manifest.Version})");
            return rejected == 0 ? ExitCodes.Success : ExitCodes.BadInput;
        }));
        return command;
    }
}
