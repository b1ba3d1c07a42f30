// cnclip bench gemm: the fp32 matrix products of a training step's linear layers, timed one by one.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

/// <summary>Times, for each linear layer shape (ROWS tokens, IN features, OUT features), the three products a training
/// step computes for it: forward x·Wᵀ, input gradient dY·W, weight gradient dYᵀ·x. tests/Benchmarks/gemm-vs-python.sh
/// runs tests/Benchmarks/peer_gemm.py beside it with the same shapes on Python PyTorch, so libtorch's BLAS (MKL) and the
/// peer's (Debian's OpenBLAS) can be compared on one CPU without the rest of the model.</summary>
public static class BenchGemmCommand
{
    /// <summary>The small-224 config at batch 16 (image tower: 16 x 50 tokens, width 256) and ViT-B-16 at batch 4
    /// (4 x 197 tokens, width 768): attention in-projection, out-projection, MLP up and down.</summary>
    public const string DefaultShapes =
        "800x256x768,800x256x256,800x256x1024,800x1024x256,788x768x2304,788x768x768,788x768x3072,788x3072x768";

    public static Command Create(CliIO io)
    {
        var shapes = new Option<string>("--shapes")
        {
            Description = "comma-separated ROWSxINxOUT linear layer shapes",
            DefaultValueFactory = _ => DefaultShapes,
        };
        var threads = new Option<int>("--threads") { Description = "intra-op CPU threads", Required = true };
        var repeats = new Option<int>("--repeats") { Description = "timed repeats of each product (after one warm-up)", DefaultValueFactory = _ => 20 };
        var command = new Command("gemm",
            "Time the fp32 matrix products (forward, input gradient, weight gradient) of linear layers of the given shapes.")
        {
            shapes, threads, repeats,
        };
        command.SetAction(r => CliApp.Guard(io, () => Run(io, r.GetValue(shapes)!, r.GetValue(threads), r.GetValue(repeats))));
        return command;
    }

    public static (int Rows, int In, int Out)[] ParseShapes(string text)
    {
        var list = new List<(int, int, int)>();
        foreach (string item in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = item.Split('x');
            if (parts.Length != 3 || !parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0))
                throw new CliException($"--shapes: '{item}' is not ROWSxINxOUT with three positive integers");
            list.Add((int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture),
                int.Parse(parts[2], CultureInfo.InvariantCulture)));
        }
        if (list.Count == 0) throw new CliException("--shapes: no shape given");
        return [.. list];
    }

    static int Run(CliIO io, string shapesText, int threads, int repeats)
    {
        if (threads < 1) throw new CliException($"--threads {threads}: must be at least 1");
        if (repeats < 1) throw new CliException($"--repeats {repeats}: must be at least 1");
        var shapes = ParseShapes(shapesText);
        Model.Runtime.TorchCpu.SetThreads(threads);
        torch.manual_seed(0);
        var results = new List<object>();
        double totalMs = 0;
        foreach (var (rows, inF, outF) in shapes)
        {
            using var scope = NewDisposeScope();
            var x = randn(rows, inF);
            var w = randn(outF, inF);
            var dy = randn(rows, outF);
            double flops = 2.0 * rows * inF * outF;
            var products = new (string Name, Func<Tensor> Compute)[]
            {
                ("forward", () => nn.functional.linear(x, w)),
                ("grad_input", () => mm(dy, w)),
                ("grad_weight", () => mm(dy.t(), x)),
            };
            var entry = new Dictionary<string, object> { ["rows"] = rows, ["in"] = inF, ["out"] = outF };
            foreach (var (name, compute) in products)
            {
                double ms = Time(compute, repeats);
                totalMs += ms;
                entry[name + "_ms"] = Math.Round(ms, 4);
                entry[name + "_gflops"] = Math.Round(flops / ms / 1e6, 2);
            }
            results.Add(entry);
        }
        io.Out.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "gemm",
            threads,
            repeats,
            total_ms = Math.Round(totalMs, 3),
            shapes = results,
            allocator = Model.Runtime.NativeAllocator.JemallocLoaded ? "jemalloc" : "glibc",
            mkl = Model.Runtime.MklCpuPath.Status,
            mkl_branch = Model.Runtime.MklCpuPath.Branch(),
        }));
        return ExitCodes.Success;
    }

    /// <summary>Median milliseconds of <paramref name="repeats"/> runs after one warm-up.</summary>
    static double Time(Func<Tensor> compute, int repeats)
    {
        compute().Dispose();
        var times = new List<double>(repeats);
        for (int i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            compute().Dispose();
            times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return BenchTrainStepCommand.Median(times);
    }
}
