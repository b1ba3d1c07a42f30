// cnclip bench allreduce: the CPU ring's all-reduce between local processes, with bus bandwidth as NCCL's tests
// report it (algorithm bandwidth x 2(N-1)/N), so numbers compare across world sizes and with other transports.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Cli.Launching;
using ChineseClip.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class BenchAllReduceCommand
{
    public static Command Create(CliIO io)
    {
        var ranks = new Option<int>("--ranks") { Description = "processes in the ring (at least 2)", DefaultValueFactory = _ => 2 };
        var mb = new Option<double>("--mb") { Description = "float32 tensor size in MB (10^6 bytes); ViT-B-16's gradients are 753", DefaultValueFactory = _ => 753 };
        var iterations = new Option<int>("--iterations") { Description = "timed all-reduces (one untimed warm-up runs first)", DefaultValueFactory = _ => 5 };
        var chunkKb = new Option<int>("--chunk-kb") { Description = "bytes per ring message, in KiB", DefaultValueFactory = _ => 1024 };
        var transport = new Option<RingTransport>("--transport") { Description = "what carries the ring's bytes: tcp or grpc (HTTP/2 streams)", DefaultValueFactory = _ => RingTransport.Tcp };
        var rank = new Option<int?>("--rank") { Hidden = true };
        var rendezvous = new Option<string?>("--rendezvous") { Hidden = true };
        var command = new Command("allreduce", "Time the ring all-reduce of worker processes between local processes (loopback).")
        {
            ranks, mb, iterations, chunkKb, transport, rank, rendezvous,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            int n = r.GetValue(ranks), k = r.GetValue(iterations), chunk = r.GetValue(chunkKb);
            double size = r.GetValue(mb);
            RingTransport via = r.GetValue(transport);
            if (n < 2) throw new CliException($"--ranks {n}: a ring needs at least 2 ranks");
            if (k < 1) throw new CliException($"--iterations {k}: must be at least 1");
            if (size <= 0) throw new CliException($"--mb {size}: must be positive");
            if (chunk < 1) throw new CliException($"--chunk-kb {chunk}: must be at least 1");
            if (r.GetValue(rank) is int me)
                return RunRank(io, me, n, size, k, chunk, via, r.GetValue(rendezvous) ?? throw new CliException("--rendezvous is required with --rank"));
            string logs = Path.Combine(Path.GetTempPath(), "cnclip-bench-allreduce-" + Environment.ProcessId);
            int code = LocalRanks.Run(n, (i, dir) =>
            [
                "bench", "allreduce", "--ranks", $"{n}", "--mb", size.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                "--iterations", $"{k}", "--chunk-kb", $"{chunk}", "--transport", $"{via}", "--rank", $"{i}", "--rendezvous", dir,
            ], io, logs);
            if (code == 0) Directory.Delete(logs, recursive: true);
            return code;
        }));
        return command;
    }

    static int RunRank(CliIO io, int rank, int ranks, double mb, int iterations, int chunkKb, RingTransport transport, string rendezvous)
    {
        long count = (long)(mb * 1e6 / sizeof(float));
        using var ring = RingCollectives.Connect(rank, ranks, new FileRendezvous(rendezvous), new RingOptions { ChunkBytes = chunkKb << 10, Transport = transport });
        using var data = empty(count);
        var times = new List<double>();
        bool correct = true;
        for (int i = 0; i <= iterations; i++)
        {
            using (Scalar value = rank + 1) data.fill_(value);
            ring.Barrier();
            var watch = Stopwatch.StartNew();
            ring.AllReduceSum(data);
            if (i > 0) times.Add(watch.Elapsed.TotalSeconds);
            float expected = ranks * (ranks + 1) / 2f;
            correct &= new[] { 0L, count / 2, count - 1 }.All(j => data[j].item<float>() == expected);
        }
        if (rank != 0) return correct ? ExitCodes.Success : ExitCodes.Failure;
        double median = times.Order().ElementAt(times.Count / 2);
        double bytes = count * (double)sizeof(float);
        double algorithm = bytes / median / 1e9;
        io.Out.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "allreduce",
            transport = transport.ToString().ToLowerInvariant(),
            ranks,
            mb = bytes / 1e6,
            chunk_kb = chunkKb,
            iterations,
            seconds_median = Math.Round(median, 4),
            seconds = times.Select(t => Math.Round(t, 4)),
            algbw_gb_s = Math.Round(algorithm, 3),
            busbw_gb_s = Math.Round(algorithm * 2 * (ranks - 1) / ranks, 3),
            correct,
        }));
        return correct ? ExitCodes.Success : ExitCodes.Failure;
    }
}
