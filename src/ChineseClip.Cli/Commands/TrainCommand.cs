// cnclip train --config FILE [--nproc N]: fine-tune with the official recipe on this machine, in one process or in N
// data-parallel worker processes joined by the ring collectives (the torchrun of this project).
using System.CommandLine;
using ChineseClip.Cli.Launching;
using ChineseClip.Distributed;
using ChineseClip.Training;
using ChineseClip.Training.Distributed;

namespace ChineseClip.Cli.Commands;

public static class TrainCommand
{
    public static Command Create(CliIO io)
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "JSON or YAML file with the official training arguments (train_data, val_data, arch, vocab, resume, batch_size, lr, wd, warmup, max_epochs, ...)",
            Required = true,
        };
        var nproc = new Option<int>("--nproc")
        {
            Description = "data-parallel worker processes on this machine; batch_size is per process and threads is shared among them",
            DefaultValueFactory = _ => 1,
        };
        var transport = new Option<RingTransport>("--transport")
        {
            Description = "what carries the ring's bytes between processes: tcp or grpc (HTTP/2 streams)",
            DefaultValueFactory = _ => RingTransport.Tcp,
        };
        var rank = new Option<int?>("--rank") { Hidden = true };
        var worldSize = new Option<int>("--world-size") { Hidden = true };
        var rendezvous = new Option<string?>("--rendezvous") { Hidden = true };
        var threads = new Option<int?>("--threads") { Hidden = true };
        var command = new Command("train", "Fine-tune Chinese-CLIP with the official recipe; checkpoints in LOGS/NAME/checkpoints.")
        {
            config, nproc, transport, rank, worldSize, rendezvous, threads,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string path = r.GetValue(config)!.FullName;
            var options = TrainOptions.Load(path);
            if (r.GetValue(threads) is int t) options = options with { Threads = t };
            var via = r.GetValue(transport);
            if (r.GetValue(rank) is int me)
            {
                string dir = r.GetValue(rendezvous) ?? throw new CliException("--rendezvous is required with --rank");
                // As torchrun's local ranks: `device: cuda` puts local rank i on GPU i (NCCL refuses two ranks on one GPU).
                if (options.Device == "cuda") options = options with { Device = $"cuda:{me}" };
                using var group = Collectives.Connect(me, r.GetValue(worldSize), new FileRendezvous(dir), options.Device,
                    new RingOptions { Transport = via, Group = Path.GetFileName(dir) });
                new Trainer(options, io.Out, group).Run();
                return ExitCodes.Success;
            }
            int n = r.GetValue(nproc);
            if (n < 1) throw new CliException($"--nproc {n}: must be at least 1");
            if (n == 1)
            {
                CliProgress.For(io).Run("train", 0, bar => new Trainer(options, io.Out) { OnProgress = p => bar.Report(Step(p)) }.Run());
                return ExitCodes.Success;
            }
            int perRank = Math.Max(1, options.Threads / n);
            string runDir = Path.Combine(options.Logs, options.Name);
            io.Out.WriteLine($"starting {n} worker processes ({perRank} thread(s) each, {via} ring); each rank's output in {runDir}/rank{{r}}.log");
            return LocalRanks.Run(n, (i, dir) =>
            [
                "train", "--config", path, "--transport", $"{via}", "--rank", $"{i}", "--world-size", $"{n}", "--rendezvous", dir,
                "--threads", $"{perRank}",
            ], io, runDir);
        }));
        return command;
    }

    /// <summary>The bar's report for a logged step: step/steps with the epoch, loss, samples/s and the trainer's ETA.</summary>
    internal static CliProgressUpdate Step(TrainProgress p) =>
        new(p.Step, p.Steps, $"epoch {p.Epoch}/{p.Epochs} loss {p.Loss:F4} {p.SamplesPerSecond:F1} samples/s ETA {(double.IsFinite(p.EtaSeconds) ? TimeSpan.FromSeconds(Math.Round(p.EtaSeconds)).ToString("g") : "?")}");
}
