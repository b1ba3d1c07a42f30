// cnclip bench encode: inference speed of one backend (TorchSharp or ONNX Runtime) on random inputs, images and texts
// timed apart; prints one JSON line. The weights are random (seed 0): speed does not depend on them. For ONNX Runtime
// the random model is exported once per architecture/precision/opset into a cache folder under the temp directory
// (or --onnx names an export folder to time).
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Model;
using ChineseClip.Model.Inference;
using ChineseClip.Model.Text;
using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Graph;
using ChineseClip.Onnx.Runtime;
using ChineseClip.Search;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class BenchEncodeCommand
{
    const string RandomWeights = "random (seed 0)";

    public static Command Create(CliIO io)
    {
        var backend = new Option<string>("--backend") { Description = "torch (TorchSharp) or onnx (ONNX Runtime, CPU)", Required = true };
        backend.AcceptOnlyFromAmong("torch", "onnx");
        var arch = new Option<string>("--arch") { Description = "VISION@TEXT or a merged architecture .json", Required = true };
        var batch = new Option<int>("--batch") { Description = "images and texts per call", DefaultValueFactory = _ => 16 };
        var threads = new Option<int>("--threads") { Description = "intra-op CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var rounds = new Option<int>("--rounds") { Description = "timed calls per tower after one warm-up; medians are reported", DefaultValueFactory = _ => 5 };
        var precision = new Option<string>("--precision") { Description = "onnx: fp32 or fp16 weights and compute", DefaultValueFactory = _ => "fp32" };
        precision.AcceptOnlyFromAmong("fp32", "fp16");
        var onnx = new Option<DirectoryInfo?>("--onnx") { Description = "onnx: time this export folder instead of a random model's" };
        var context = new Option<int>("--context-length") { Description = "tokens per text ([CLS] and [SEP] included; no padding)", DefaultValueFactory = _ => ClipTokenizer.DefaultContextLength };
        var command = new Command("encode", "Time image and text encoding (TorchSharp or ONNX Runtime) on random inputs; prints images_per_s and texts_per_s.")
        {
            backend, arch, batch, threads, rounds, precision, onnx, context,
        };
        command.SetAction(r => CliApp.Guard(io, () => Run(io, r.GetValue(backend)!, r.GetValue(arch)!, r.GetValue(batch), r.GetValue(threads),
            r.GetValue(rounds), r.GetValue(precision)!, r.GetValue(onnx), r.GetValue(context))));
        return command;
    }

    static int Run(CliIO io, string backend, string archName, int batch, int threads, int rounds, string precision, DirectoryInfo? onnxDir, int contextLength)
    {
        if (batch < 1 || threads < 1 || rounds < 1) throw new CliException("--batch, --threads and --rounds must be at least 1");
        if (backend == "torch" && (precision != "fp32" || onnxDir is not null))
            throw new CliException("--precision and --onnx are for --backend onnx (TorchSharp runs the model in float32 on the CPU)");
        ClipConfig config = Architectures.Resolve(archName);
        if (contextLength < 3 || contextLength > config.TextMaxPositionEmbeddings)
            throw new CliException($"--context-length {contextLength}: must be 3 to {config.TextMaxPositionEmbeddings}");

        double? exportSeconds = null;
        string? folder = null;
        IClipEncoder encoder;
        if (backend == "torch")
        {
            Model.Runtime.TorchCpu.SetThreads(threads);
            encoder = new TorchClipEncoder(RandomModel(config), contextLength);
        }
        else
        {
            folder = onnxDir?.FullName ?? CachedExport(config, precision == "fp16" ? OnnxPrecision.Fp16 : OnnxPrecision.Fp32, contextLength, out exportSeconds);
            var opened = OnnxClipEncoder.FromExport(folder, new OnnxEncoderOptions { Threads = threads });
            if (opened.Config with { Name = config.Name } != config)
            {
                opened.Dispose();
                throw new CliException($"{folder} holds {opened.Config.Name}, not {config.Name}");
            }
            encoder = opened;
        }

        using (encoder)
        {
            var random = new Random(0);
            int r = config.ImageResolution;
            var pixels = new float[batch * 3 * r * r];
            for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(random.NextDouble() * 4 - 2);
            // Full-length texts, so that both backends do the same work whatever padding they use.
            var ids = Enumerable.Range(0, batch).Select(_ =>
                Enumerable.Range(0, contextLength).Select(j => j == 0 ? 101 : j == contextLength - 1 ? 102 : random.Next(672, Math.Min(config.VocabSize, 8000))).ToArray()).ToList();

            List<double> Time(Action call)
            {
                call();  // warm-up
                var times = new List<double>();
                for (int i = 0; i < rounds; i++)
                {
                    var watch = Stopwatch.StartNew();
                    call();
                    times.Add(watch.Elapsed.TotalMilliseconds);
                }
                return times;
            }
            var imageMs = Time(() => encoder.EncodeImages(pixels, batch));
            var textMs = Time(() => encoder.EncodeTexts(ids));
            static double Median(List<double> t) => t.Order().ElementAt(t.Count / 2);
            double MiB(string file) => folder is null || !File.Exists(Path.Combine(folder, file)) ? 0
                : Math.Round(new FileInfo(Path.Combine(folder, file)).Length / (1024.0 * 1024.0), 1);
            io.Out.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "encode",
                backend,
                arch = config.Name,
                precision,
                batch,
                threads,
                rounds,
                context_length = contextLength,
                images_per_s = Math.Round(batch * 1000.0 / Median(imageMs), 2),
                texts_per_s = Math.Round(batch * 1000.0 / Median(textMs), 2),
                image_ms_median = Math.Round(Median(imageMs), 2),
                text_ms_median = Math.Round(Median(textMs), 2),
                image_ms = imageMs.Select(t => Math.Round(t, 1)).ToArray(),
                text_ms = textMs.Select(t => Math.Round(t, 1)).ToArray(),
                onnx = folder,
                export_s = exportSeconds is null ? (double?)null : Math.Round(exportSeconds.Value, 1),
                image_onnx_mib = folder is null ? (double?)null : MiB(TowerGraphs.ImageFile) + MiB(TowerGraphs.ImageFile + ".data"),
                text_onnx_mib = folder is null ? (double?)null : MiB(TowerGraphs.TextFile),
                peak_rss_mb = Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20),
            }));
        }
        return ExitCodes.Success;
    }

    static ClipModel RandomModel(ClipConfig config)
    {
        torch.manual_seed(0);
        var model = new ClipModel(config);
        model.eval();
        return model;
    }

    // The seeded random model's export, made once and kept: exporting a large model takes longer than timing it.
    static string CachedExport(ClipConfig config, OnnxPrecision precision, int contextLength, out double? seconds)
    {
        string name = string.Concat(config.Name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_'));
        string folder = Path.Combine(Path.GetTempPath(), "cnclip-bench-encode", $"{name}-{precision.ToString().ToLowerInvariant()}-opset{OnnxOpsets.Default}");
        seconds = null;
        if (File.Exists(Path.Combine(folder, TowerGraphs.ImageFile)) && File.Exists(Path.Combine(folder, TowerGraphs.TextFile)))
        {
            try
            {
                using var cached = OnnxClipEncoder.FromExport(folder);
                if (cached.Config == config && cached.Metadata.GetValueOrDefault(OnnxMetadata.Checkpoint) == RandomWeights && cached.ContextLength >= contextLength)
                    return folder;
            }
            catch (OnnxModelException)
            {
                // an unusable cache entry is exported again
            }
        }
        var watch = Stopwatch.StartNew();
        using var model = RandomModel(config);
        OnnxExporter.Export(model, folder, new OnnxExportOptions
        {
            Precision = precision,
            Checkpoint = RandomWeights,
            ContextLength = config.TextMaxPositionEmbeddings,
            Overwrite = true,
        });
        seconds = watch.Elapsed.TotalSeconds;
        return folder;
    }
}
