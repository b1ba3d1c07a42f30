// cnclip bench train-step: the official fine-tuning step on random inputs, timed.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Model;
using ChineseClip.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class BenchTrainStepCommand
{
    const int ContextLength = 52;

    public static Command Create(CliIO io)
    {
        var arch = new Option<string>("--arch") { Description = "VISION@TEXT or a merged architecture .json", Required = true };
        var batch = new Option<int>("--batch") { Description = "samples per step", Required = true };
        var steps = new Option<int>("--steps") { Description = "timed steps (one untimed warm-up step runs first)", Required = true };
        var threads = new Option<int>("--threads") { Description = "intra-op CPU threads", Required = true };
        var context = new Option<int>("--context-length") { Description = "tokens per text", DefaultValueFactory = _ => ContextLength };
        var checkpointing = new Option<bool>("--grad-checkpointing") { Description = "recompute transformer blocks in the backward pass" };
        var profile = new Option<bool>("--profile") { Description = "also time the phases (image forward, text forward, loss + backward, AdamW) in extra steps" };
        var precision = new Option<string>("--precision")
        {
            Description = "fp32, or bf16: forward and backward on a bf16 copy of the model, fp32 master weights and AdamW (the training option)",
            DefaultValueFactory = _ => "fp32",
        };
        var command = new Command("train-step",
            "Time one official fine-tuning step (both towers, symmetric InfoNCE, backward, AdamW, logit-scale clamp) on random inputs.")
        {
            arch, batch, steps, threads, context, checkpointing, profile, precision,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
            Run(io, r.GetValue(arch)!, r.GetValue(batch), r.GetValue(steps), r.GetValue(threads), r.GetValue(context),
                r.GetValue(checkpointing), r.GetValue(profile), r.GetValue(precision)!)));
        return command;
    }

    static int Run(CliIO io, string archName, int batch, int steps, int threads, int contextLength, bool checkpointing, bool profile,
        string precision)
    {
        if (precision is not ("fp32" or "bf16")) throw new CliException($"--precision {precision}: expected fp32 or bf16");
        if (contextLength < 3) throw new CliException($"--context-length {contextLength}: must be at least 3");
        if (batch < 1) throw new CliException($"--batch {batch}: must be at least 1");
        if (steps < 1) throw new CliException($"--steps {steps}: must be at least 1");
        if (threads < 1) throw new CliException($"--threads {threads}: must be at least 1");
        ClipConfig config = Architectures.Resolve(archName);
        Model.Runtime.TorchCpu.SetThreads(threads);
        torch.manual_seed(0);
        using var model = new ClipModel(config);
        model.train();
        if (checkpointing) model.SetGradCheckpointing(true);
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(config));
        using var bf16 = precision == "bf16" ? new Bf16Compute(model) : null;
        if (checkpointing) bf16?.Compute.SetGradCheckpointing(true);
        using var pixels = randn(batch, 3, config.ImageResolution, config.ImageResolution);
        using var ids = RandomIds(batch, config.VocabSize, contextLength);

        // Wall time, and the process's CPU time (every thread's) per step: on a shared machine the wall time grows with
        // other jobs' load, the CPU time much less, so the side-by-side script compares both.
        var times = new List<double>();
        var cpuTimes = new List<double>();
        using var self = Process.GetCurrentProcess();
        float loss = 0;
        for (int i = 0; i <= steps; i++)
        {
            self.Refresh();
            var cpuStart = self.TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            loss = TrainStep.Run(model, optimizer, pixels, ids, bf16: bf16).Loss;
            double wall = watch.Elapsed.TotalMilliseconds;
            self.Refresh();
            if (i == 0) continue;
            times.Add(wall);
            cpuTimes.Add((self.TotalProcessorTime - cpuStart).TotalMilliseconds);
        }
        double median = Median(times);
        var phases = profile ? Phases(model, optimizer, pixels, ids, steps, bf16: bf16) : null;
        var result = new
        {
            bench = "train-step",
            arch = config.Name,
            batch,
            steps,
            threads,
            context_length = contextLength,
            grad_checkpointing = checkpointing,
            precision,
            phases_ms_median = phases,
            ms_per_step_median = Math.Round(median, 2),
            samples_per_s = Math.Round(batch * 1000.0 / median, 3),
            ms_per_step = times.Select(t => Math.Round(t, 2)).ToArray(),
            cpu_ms_per_step_median = Math.Round(Median(cpuTimes), 2),
            final_loss = loss,
            peak_rss_mb = self.PeakWorkingSet64 / (1 << 20),
            allocator = Model.Runtime.NativeAllocator.JemallocLoaded ? "jemalloc" : "glibc",
            malloc_conf = Model.Runtime.NativeAllocator.JemallocConfig,
            mkl = Model.Runtime.MklCpuPath.Status,
            mkl_branch = Model.Runtime.MklCpuPath.Branch(),
        };
        io.Out.WriteLine(JsonSerializer.Serialize(result));
        return ExitCodes.Success;
    }

    /// <summary>The step of TrainStep.Run cut into its phases, each timed on its own (median over the steps). On a GPU
    /// <paramref name="synchronize"/> ends each phase (device work is asynchronous); with <paramref name="bf16"/> the
    /// passes run on its bf16 copy, re-cast first (a phase of its own).</summary>
    internal static Dictionary<string, double> Phases(ClipModel model, TorchSharp.Modules.AdamW optimizer, Tensor pixels, Tensor ids, int steps,
        Action? synchronize = null, Bf16Compute? bf16 = null)
    {
        var t = new Dictionary<string, List<double>> { ["image_forward"] = [], ["text_forward"] = [], ["loss_backward"] = [], ["adamw"] = [] };
        if (bf16 is not null) t["bf16_pull_weights"] = [];
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            synchronize?.Invoke();
            var watch = Stopwatch.StartNew();
            void Lap(string phase)
            {
                synchronize?.Invoke();
                t[phase].Add(watch.Elapsed.TotalMilliseconds);
                watch.Restart();
            }
            ClipModel net = model;
            if (bf16 is not null)
            {
                bf16.PullWeights();
                net = bf16.Compute;
            }
            Training.Distributed.GradientBucket.For(net).Zero();
            if (bf16 is not null) Lap("bf16_pull_weights");
            var image = ClipModel.Normalize(net.EncodeImage(pixels)).to(ScalarType.Float32);
            Lap("image_forward");
            var text = ClipModel.Normalize(net.EncodeText(ids)).to(ScalarType.Float32);
            Lap("text_forward");
            ContrastiveLoss.Compute(image, text, net.LogitScale.exp().to(ScalarType.Float32)).backward();
            bf16?.PushGradients();
            Lap("loss_backward");
            optimizer.step();
            OptimizerFactory.ClampLogitScale(model);
            Lap("adamw");
        }
        return t.ToDictionary(kv => kv.Key, kv => Math.Round(Median(kv.Value), 2));
    }

    /// <summary>[CLS] + random word pieces of random length + [SEP], zero-padded: realistic masks for both towers.
    /// The official vocab's [CLS]/[SEP] are 101/102 and its word pieces start at 672; a small vocab (the demo's) keeps
    /// its five specials first. <paramref name="full"/>: every text fills the context (no [PAD]).</summary>
    internal static Tensor RandomIds(int batch, int vocab, int contextLength, bool full = false)
    {
        bool official = vocab > 672;
        long cls = official ? 101 : 2, sep = official ? 102 : 3;
        int firstWord = official ? 672 : 5;
        var random = new Random(0);
        var ids = new long[batch * contextLength];
        for (int b = 0; b < batch; b++)
        {
            int length = full ? contextLength - 2 : random.Next(Math.Min(8, contextLength - 2), contextLength - 1);
            ids[b * contextLength] = cls;
            for (int t = 1; t <= length; t++) ids[b * contextLength + t] = random.Next(firstWord, vocab);
            ids[b * contextLength + length + 1] = sep;
        }
        return tensor(ids, [batch, contextLength]);
    }

    internal static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
