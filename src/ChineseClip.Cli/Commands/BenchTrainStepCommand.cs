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
        var command = new Command("train-step",
            "Time one official fine-tuning step (both towers, symmetric InfoNCE, backward, AdamW, logit-scale clamp) on random inputs.")
        {
            arch, batch, steps, threads,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
            Run(io, r.GetValue(arch)!, r.GetValue(batch), r.GetValue(steps), r.GetValue(threads))));
        return command;
    }

    static int Run(CliIO io, string archName, int batch, int steps, int threads)
    {
        if (batch < 1) throw new CliException($"--batch {batch}: must be at least 1");
        if (steps < 1) throw new CliException($"--steps {steps}: must be at least 1");
        if (threads < 1) throw new CliException($"--threads {threads}: must be at least 1");
        ClipConfig config = Architectures.Resolve(archName);
        torch.set_num_threads(threads);
        torch.manual_seed(0);
        using var model = new ClipModel(config);
        model.train();
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(config));
        using var pixels = randn(batch, 3, config.ImageResolution, config.ImageResolution);
        using var ids = RandomIds(batch, config.VocabSize, ContextLength);

        var times = new List<double>();
        float loss = 0;
        for (int i = 0; i <= steps; i++)
        {
            var watch = Stopwatch.StartNew();
            loss = TrainStep.Run(model, optimizer, pixels, ids).Loss;
            if (i > 0) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        double median = Median(times);
        var result = new
        {
            bench = "train-step",
            arch = config.Name,
            batch,
            steps,
            threads,
            ms_per_step_median = Math.Round(median, 2),
            samples_per_s = Math.Round(batch * 1000.0 / median, 3),
            ms_per_step = times.Select(t => Math.Round(t, 2)).ToArray(),
            final_loss = loss,
            peak_rss_mb = Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20),
            allocator = Model.Runtime.NativeAllocator.JemallocLoaded ? "jemalloc" : "glibc",
        };
        io.Out.WriteLine(JsonSerializer.Serialize(result));
        return ExitCodes.Success;
    }

    /// <summary>[CLS] + random word pieces of random length + [SEP], zero-padded: realistic masks for both towers.</summary>
    internal static Tensor RandomIds(int batch, int vocab, int contextLength)
    {
        var random = new Random(0);
        var ids = new long[batch * contextLength];
        for (int b = 0; b < batch; b++)
        {
            int length = random.Next(8, contextLength - 1);
            ids[b * contextLength] = 101;
            for (int t = 1; t <= length; t++) ids[b * contextLength + t] = random.Next(672, vocab);
            ids[b * contextLength + length + 1] = 102;
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
