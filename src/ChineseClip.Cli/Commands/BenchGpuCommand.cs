// cnclip bench gpu: what bench/gpu/run.sh runs on a CUDA machine. --check prints the CUDA checks as one JSON line
// (forward parity CPU vs GPU on the official fixture, NCCL world-1 collectives, training steps CPU vs GPU); without it,
// one JSON line with the timed fine-tuning step. Peak memory is sampled by run.sh (TorchSharp 0.107 has no CUDA memory API).
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Distributed;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Training;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class BenchGpuCommand
{
    public static Command Create(CliIO io)
    {
        var check = new Option<bool>("--check") { Description = "run the CUDA checks instead of the timing (needs --fixtures)" };
        var fixtures = new Option<DirectoryInfo?>("--fixtures") { Description = "the official-tiny fixture folder (arch.json, parity.pt, ref_pixels.safetensors, ref_tokens.jsonl)" };
        var device = new Option<string>("--device") { Description = "cuda or cuda:N", DefaultValueFactory = _ => "cuda" };
        var arch = new Option<string>("--arch") { Description = "timed architecture", DefaultValueFactory = _ => "ViT-B-16@RoBERTa-wwm-ext-base-chinese" };
        var batch = new Option<int>("--batch") { Description = "samples per timed step", DefaultValueFactory = _ => 128 };
        var contextLength = new Option<int>("--context-length") { Description = "text tokens per sample", DefaultValueFactory = _ => 52 };
        var steps = new Option<int>("--steps") { Description = "timed steps", DefaultValueFactory = _ => 10 };
        var warmup = new Option<int>("--warmup") { Description = "untimed steps first", DefaultValueFactory = _ => 3 };
        var precision = new Option<string>("--precision")
        {
            Description = "fp32, or bf16: the trainer's bf16 compute with fp32 master weights and AdamW",
            DefaultValueFactory = _ => "bf16",
        };
        var tf32 = new Option<bool>("--tf32") { Description = "allow TF32 for float32 matrix products" };
        var sdpa = new Option<string>("--sdpa-backend") { Description = "auto, flash or math", DefaultValueFactory = _ => "auto" };
        var checkpointing = new Option<bool>("--grad-checkpointing") { Description = "recompute each transformer block in the backward pass (timed step)" };
        var command = new Command("gpu", "CUDA checks (--check) or the timed fine-tuning step on a CUDA device; one JSON line.")
        {
            check, fixtures, device, arch, batch, contextLength, steps, warmup, precision, tf32, sdpa, checkpointing,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            if (r.GetValue(precision) is not ("fp32" or "bf16")) throw new CliException($"--precision {r.GetValue(precision)}: expected fp32 or bf16");
            if (!TrainOptions.SdpaBackends.Contains(r.GetValue(sdpa)!)) throw new CliException($"--sdpa-backend {r.GetValue(sdpa)}: expected auto, flash or math");
            Device cuda = CudaDevice(r.GetValue(device)!);
            DeviceSettings.ApplyCudaSwitches(r.GetValue(tf32), r.GetValue(sdpa)!);
            object result = r.GetValue(check)
                ? Checks(r.GetValue(fixtures)?.FullName ?? throw new CliException("--check needs --fixtures DIR"), cuda)
                : Time(r.GetValue(arch)!, cuda, r.GetValue(batch), r.GetValue(contextLength), r.GetValue(steps), r.GetValue(warmup), r.GetValue(precision)!,
                    r.GetValue(checkpointing));
            io.Out.WriteLine(JsonSerializer.Serialize(result));
            return ExitCodes.Success;
        }));
        return command;
    }

    static Device CudaDevice(string text)
    {
        Device device;
        try
        {
            device = DeviceSettings.Resolve(text);
        }
        catch (NotSupportedException e)
        {
            throw new CliException(e.Message, ExitCodes.Failure);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--device: {e.Message}");
        }
        if (device.type != DeviceType.CUDA) throw new CliException($"--device {text}: bench gpu needs cuda or cuda:N");
        return device;
    }

    internal static object Checks(string fixtures, Device device)
    {
        var checks = new List<object> { Run("forward-parity", () => ForwardParity(fixtures, device)), Run("nccl-world-1", () => NcclWorldOne(device)) };
        foreach (string precision in new[] { "fp32", "bf16" })
            checks.Add(Run($"train-steps-{precision}", () => TrainSteps(fixtures, device, precision)));
        return new { bench = "gpu-check", device = device.ToString(), libtorch = Model.Runtime.TorchNative.MappedLibtorch(), checks };
    }

    // A check that throws is reported, not fatal: the other checks still say what they can.
    static object Run(string name, Func<(bool Ok, object Detail)> check)
    {
        try
        {
            var (ok, detail) = check();
            return new { name, ok, detail };
        }
        catch (Exception e)
        {
            return new { name, ok = false, detail = (object)$"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" | ")}" };
        }
    }

    static (Tensor Pixels, Tensor Ids) FixtureInputs(string fixtures)
    {
        var pixels = SafetensorsFile.Load(Path.Combine(fixtures, "ref_pixels.safetensors"))["pixels"];
        var rows = File.ReadLines(Path.Combine(fixtures, "ref_tokens.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(e => e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt64()).ToArray()).ToList();
        return (pixels, tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, rows[0].Length]));
    }

    static ClipModel FixtureModel(string fixtures) =>
        ClipModel.Load(Architectures.Resolve(Path.Combine(fixtures, "arch.json")), Path.Combine(fixtures, "parity.pt"));

    static (bool, object) ForwardParity(string fixtures, Device device)
    {
        using var scope = NewDisposeScope();
        using var model = FixtureModel(fixtures);
        model.eval();
        var (pixels, ids) = FixtureInputs(fixtures);
        using var _ = no_grad();
        Tensor cpuImages = ClipModel.Normalize(model.EncodeImage(pixels)), cpuTexts = ClipModel.Normalize(model.EncodeText(ids));
        model.to(device);
        Tensor gpuImages = ClipModel.Normalize(model.EncodeImage(pixels.to(device))).cpu();
        Tensor gpuTexts = ClipModel.Normalize(model.EncodeText(ids.to(device))).cpu();
        double imageCosine = (cpuImages * gpuImages).sum(1).min().item<float>();
        double textCosine = (cpuTexts * gpuTexts).sum(1).min().item<float>();
        return (Math.Min(imageCosine, textCosine) >= 0.9999, new { min_cosine_image = imageCosine, min_cosine_text = textCosine, bound = 0.9999 });
    }

    static (bool, object) NcclWorldOne(Device device)
    {
        using var scope = NewDisposeScope();
        string rendezvous = Path.Combine(Path.GetTempPath(), "cnclip-nccl-" + Guid.NewGuid().ToString("N"));
        using var group = NcclCollectives.Connect(0, 1, new FileRendezvous(rendezvous), device, TimeSpan.FromMinutes(1));
        var errors = new Dictionary<string, double>();
        foreach (var type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            Tensor x = randn(1 << 22, dtype: type, device: device), expected = x.clone();
            group.AllReduceSum(x);
            errors[$"all_reduce_{type}"] = (x - expected).abs().max().to(ScalarType.Float64).item<double>();
        }
        Tensor local = randn(1000, 3, device: device);
        Tensor[] gathered = group.AllGather(local);
        errors["all_gather"] = gathered.Length == 1 ? (gathered[0] - local).abs().max().item<float>() : double.PositiveInfinity;
        Tensor b = randn(4096, device: device), before = b.clone();
        group.Broadcast(b, 0);
        errors["broadcast"] = (b - before).abs().max().item<float>();
        group.Barrier();
        return (errors.Values.All(e => e == 0), new { nccl_version = NcclCollectives.Version(), max_abs_error = errors });
    }

    // The same seeded batch and weights, three official steps on the CPU (fp32) and on the GPU; losses and weights
    // compared. bf16 runs the GPU passes on the trainer's bf16 copy (fp32 master weights), so it is held to a bf16 bound.
    static (bool, object) TrainSteps(string fixtures, Device device, string precision)
    {
        using var scope = NewDisposeScope();
        ClipConfig config = Architectures.Resolve(Path.Combine(fixtures, "arch.json"));
        torch.manual_seed(0);
        Tensor pixels = randn(8, 3, config.ImageResolution, config.ImageResolution);
        Tensor ids = BenchTrainStepCommand.RandomIds(8, config.VocabSize, 52);
        using var cpuModel = FixtureModel(fixtures);
        using var gpuModel = FixtureModel(fixtures);
        gpuModel.to(device);
        // Dropout would draw different masks on the two devices.
        cpuModel.eval();
        gpuModel.eval();
        using var bf16 = precision == "bf16" ? new Bf16Compute(gpuModel) : null;
        using var cpuOptimizer = OptimizerFactory.CreateAdamW(cpuModel, AdamWSettings.OfficialFor(config));
        using var gpuOptimizer = OptimizerFactory.CreateAdamW(gpuModel, AdamWSettings.OfficialFor(config));
        var cpuLosses = new List<float>();
        var gpuLosses = new List<float>();
        for (int step = 0; step < 3; step++)
        {
            cpuLosses.Add(TrainStep.Run(cpuModel, cpuOptimizer, pixels, ids).Loss);
            gpuLosses.Add(TrainStep.Run(gpuModel, gpuOptimizer, pixels.to(device), ids.to(device), bf16: bf16).Loss);
        }
        double lossError = cpuLosses.Zip(gpuLosses, (c, g) => Math.Abs(c - g) / Math.Max(Math.Abs(c), 1e-6)).Max();
        var gpuState = gpuModel.state_dict();
        double weightError = cpuModel.state_dict().Where(kv => kv.Value.is_floating_point())
            .Max(kv => ((gpuState[kv.Key].cpu().to(ScalarType.Float32) - kv.Value).norm() / (kv.Value.norm() + 1e-12)).item<float>());
        double bound = precision == "bf16" ? 2e-2 : 1e-3;
        return (lossError <= bound && weightError <= bound * 10, new
        {
            cpu_losses = cpuLosses, gpu_losses = gpuLosses, max_relative_loss_error = lossError, max_relative_weight_error = weightError,
            loss_bound = bound, weight_bound = bound * 10,
        });
    }

    static object Time(string archName, Device device, int batch, int contextLength, int steps, int warmup, string precision, bool checkpointing)
    {
        if (batch < 1 || steps < 1 || warmup < 0) throw new CliException("--batch and --steps must be at least 1, --warmup not negative");
        if (contextLength < 10) throw new CliException($"--context-length {contextLength}: must be at least 10");
        ClipConfig config = Architectures.Resolve(archName);
        torch.manual_seed(0);
        using var model = new ClipModel(config);
        model.to(device);
        model.train();
        using var bf16 = precision == "bf16" ? new Bf16Compute(model) : null;
        (bf16?.Compute ?? model).SetGradCheckpointing(checkpointing);
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(config));
        using var pixels = randn(batch, 3, config.ImageResolution, config.ImageResolution, device: device);
        using var ids = BenchTrainStepCommand.RandomIds(batch, config.VocabSize, contextLength).to(device);
        var times = new List<double>();
        float loss = 0;
        for (int i = 0; i < warmup + steps; i++)
        {
            cuda.synchronize(device);
            var watch = Stopwatch.StartNew();
            loss = TrainStep.Run(model, optimizer, pixels, ids, bf16: bf16).Loss; // reading the loss waits for the step
            cuda.synchronize(device);
            if (i >= warmup) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        double median = BenchTrainStepCommand.Median(times);
        // Where a step's time goes: 5 more steps cut into their phases, each ended by a synchronize (the phases add up to
        // a little more than a step, which runs without the cuts).
        var phases = BenchTrainStepCommand.Phases(model, optimizer, pixels, ids, 5, () => cuda.synchronize(device), bf16);
        return new
        {
            bench = "gpu-train-step", side = "cnclip", arch = config.Name, device = device.ToString(), batch, context_length = contextLength,
            precision = precision == "bf16" ? "bf16 compute, fp32 master weights" : "fp32", grad_checkpointing = checkpointing,
            steps, ms_per_step_median = Math.Round(median, 2), samples_per_s = Math.Round(batch * 1000.0 / median, 2),
            ms_per_step = times.Select(t => Math.Round(t, 2)).ToArray(), final_loss = loss,
            phases_ms = phases,
        };
    }
}
