// cnclip bench gpu: what bench/gpu/run.sh runs on a CUDA machine. --check prints the CUDA checks as one JSON line
// (forward parity CPU vs GPU on the official fixture, NCCL world-1 collectives, training steps CPU vs GPU); without it,
// one JSON line with the timed fine-tuning step. Peak memory is sampled by run.sh (TorchSharp 0.107 has no CUDA memory API).
//
// --variants times several versions of the step in one process, side by side (each its own model and optimizer, the
// variants taking turns --rounds times): `base` is the step as built, and levers are added with '+'. Speed switches
// that are off by default: qkv (fused QKV in the text tower), nomask (no attention mask for a batch without [PAD]),
// silu (KernelChoices.QuickGeluAsSilu; it rounds differently), patchmm (KernelChoices.PatchEmbeddingAsMatmul); `all` is
// every one of them. The earlier paths of switches now on by default, kept to be timed against them:
// pertensor (the bf16 copy re-cast tensor by tensor, not with Bf16Compute.FlatCopy's one copy), linear3d (Linear layers
// on 3-D inputs through TorchSharp's F.linear as it is, not KernelChoices.FoldLinearInputs), select (packed q/k/v split
// with three selects, not KernelChoices.UnbindPackedQkv). And full: every text fills the context, so a batch has no
// [PAD].
using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using ChineseClip.Distributed;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Towers;
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
        var variants = new Option<string>("--variants")
        {
            Description = "comma-separated versions of the step to time side by side: base, or levers joined by '+' (qkv, nomask, silu, patchmm, all = these four; earlier paths: pertensor, linear3d, select; full: texts without [PAD])",
            DefaultValueFactory = _ => "base",
        };
        var rounds = new Option<int>("--rounds") { Description = "times the variants take turns (each round: warm-up, then --steps timed steps)", DefaultValueFactory = _ => 1 };
        var phaseSteps = new Option<int>("--phase-steps") { Description = "extra steps cut into phases, and as many timed on the host side only (0: none)", DefaultValueFactory = _ => 5 };
        var profileStep = new Option<bool>("--profile-step") { Description = "one more step inside cuProfilerStart/Stop, for ncu --profile-from-start off" };
        var command = new Command("gpu", "CUDA checks (--check) or the timed fine-tuning step on a CUDA device; one JSON line.")
        {
            check, fixtures, device, arch, batch, contextLength, steps, warmup, precision, tf32, sdpa, checkpointing, variants, rounds, phaseSteps, profileStep,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            if (r.GetValue(precision) is not ("fp32" or "bf16")) throw new CliException($"--precision {r.GetValue(precision)}: expected fp32 or bf16");
            if (!TrainOptions.SdpaBackends.Contains(r.GetValue(sdpa)!)) throw new CliException($"--sdpa-backend {r.GetValue(sdpa)}: expected auto, flash or math");
            var timing = new Timing(r.GetValue(batch), r.GetValue(contextLength), r.GetValue(steps), r.GetValue(warmup), r.GetValue(precision)!,
                r.GetValue(checkpointing), r.GetValue(rounds), r.GetValue(phaseSteps), r.GetValue(profileStep));
            var parsed = Variant.ParseList(r.GetValue(variants)!); // before the device: a typo is exit 2 anywhere
            timing.Validate();
            Device cuda = CudaDevice(r.GetValue(device)!);
            DeviceSettings.ApplyCudaSwitches(r.GetValue(tf32), r.GetValue(sdpa)!);
            object result = r.GetValue(check)
                ? Checks(r.GetValue(fixtures)?.FullName ?? throw new CliException("--check needs --fixtures DIR"), cuda)
                : Time(r.GetValue(arch)!, cuda, timing, parsed);
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
            checks.Add(Run($"train-steps-{precision}", () => TrainSteps(fixtures, device, precision, levers: false)));
        // The speed switches (--variants all) on the GPU side, against the same plain CPU steps and bounds; texts
        // without [PAD], so that the unmasked attention runs.
        foreach (string precision in new[] { "fp32", "bf16" })
            checks.Add(Run($"train-steps-{precision}-all-levers", () => TrainSteps(fixtures, device, precision, levers: true)));
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
    static (bool, object) TrainSteps(string fixtures, Device device, string precision, bool levers)
    {
        using var scope = NewDisposeScope();
        ClipConfig config = Architectures.Resolve(Path.Combine(fixtures, "arch.json"));
        torch.manual_seed(0);
        Tensor pixels = randn(8, 3, config.ImageResolution, config.ImageResolution);
        Tensor ids = BenchTrainStepCommand.RandomIds(8, config.VocabSize, 52, full: levers);
        using var cpuModel = FixtureModel(fixtures);
        using var gpuModel = FixtureModel(fixtures);
        gpuModel.to(device);
        // Dropout would draw different masks on the two devices.
        cpuModel.eval();
        gpuModel.eval();
        using var bf16 = precision == "bf16" ? new Bf16Compute(gpuModel) : null;
        var net = bf16?.Compute ?? gpuModel;
        net.Bert.FusedQkv = levers;
        net.Bert.SkipMaskWhenUnpadded = levers;
        net.Kernels = net.Kernels with { QuickGeluAsSilu = levers, PatchEmbeddingAsMatmul = levers };
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
        using Scalar tiny = 1e-12;
        double weightError = cpuModel.state_dict().Where(kv => kv.Value.is_floating_point())
            .Max(kv => ((gpuState[kv.Key].cpu().to(ScalarType.Float32) - kv.Value).norm() / kv.Value.norm().add(tiny, Sum.One)).item<float>());
        double bound = precision == "bf16" ? 2e-2 : 1e-3;
        return (lossError <= bound && weightError <= bound * 10, new
        {
            bf16_recast = bf16 is null ? null : $"flat {bf16.FlatPulls}, per tensor {bf16.PerTensorPulls}",
            cpu_losses = cpuLosses, gpu_losses = gpuLosses, max_relative_loss_error = lossError, max_relative_weight_error = weightError,
            loss_bound = bound, weight_bound = bound * 10,
        });
    }

    /// <summary>One version of the step: the speed switches it turns on, the earlier paths it goes back to, and
    /// whether its texts fill the context.</summary>
    internal sealed record Variant(string Name, bool PerTensor, bool Linear3d, bool Select, bool Qkv, bool NoMask, bool Silu, bool PatchMatmul, bool Full)
    {
        static readonly string[] Levers = ["qkv", "nomask", "silu", "patchmm", "pertensor", "linear3d", "select", "full"];
        static readonly string[] All = ["qkv", "nomask", "silu", "patchmm"];

        public static Variant Parse(string text)
        {
            var parts = text.Split('+', StringSplitOptions.TrimEntries);
            var levers = new HashSet<string>(StringComparer.Ordinal);
            foreach (string part in parts)
            {
                if (part == "all") levers.UnionWith(All);
                else if (Levers.Contains(part)) levers.Add(part);
                else if (part != "base" || parts.Length > 1)
                    throw new CliException($"--variants: '{part}' in '{text}' is not base, all, or a lever ({string.Join(", ", Levers)})");
            }
            return new Variant(text, levers.Contains("pertensor"), levers.Contains("linear3d"), levers.Contains("select"), levers.Contains("qkv"),
                levers.Contains("nomask"), levers.Contains("silu"), levers.Contains("patchmm"), levers.Contains("full"));
        }

        /// <summary>The towers' kernel paths this variant runs.</summary>
        public KernelChoices Kernels(KernelChoices defaults) => defaults with
        {
            FoldLinearInputs = !Linear3d, UnbindPackedQkv = !Select, QuickGeluAsSilu = Silu, PatchEmbeddingAsMatmul = PatchMatmul,
        };

        public static IReadOnlyList<Variant> ParseList(string text)
        {
            var names = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (names.Length == 0) throw new CliException("--variants: empty list");
            if (names.Distinct().Count() != names.Length) throw new CliException($"--variants {text}: a variant is named twice");
            return names.Select(Parse).ToList();
        }
    }

    internal sealed record Timing(int Batch, int ContextLength, int Steps, int Warmup, string Precision, bool Checkpointing, int Rounds, int PhaseSteps, bool ProfileStep)
    {
        public void Validate()
        {
            if (Batch < 1 || Steps < 1 || Warmup < 0) throw new CliException("--batch and --steps must be at least 1, --warmup not negative");
            if (ContextLength < 10) throw new CliException($"--context-length {ContextLength}: must be at least 10");
            if (Rounds < 1) throw new CliException($"--rounds {Rounds}: must be at least 1");
            if (PhaseSteps < 0) throw new CliException($"--phase-steps {PhaseSteps}: must not be negative");
        }
    }

    // A variant's model, optimizer and batch, made once and stepped in every round.
    sealed class Rig(Variant variant, ClipModel model, Bf16Compute? bf16, TorchSharp.Modules.AdamW optimizer, Tensor pixels, Tensor ids) : IDisposable
    {
        public Variant Variant => variant;
        public ClipModel Model => model;
        public Bf16Compute? Bf16 => bf16;
        public TorchSharp.Modules.AdamW Optimizer => optimizer;
        public Tensor Pixels => pixels;
        public Tensor Ids => ids;
        public List<double> Times { get; } = [];
        public List<double> RoundMedians { get; } = [];
        public float Loss { get; set; }
        public string? Error { get; set; }

        public static Rig Build(Variant variant, ClipConfig config, Device device, Timing t)
        {
            torch.manual_seed(0);
            var model = new ClipModel(config);
            model.to(device);
            model.train();
            var bf16 = t.Precision == "bf16" ? new Bf16Compute(model) { FlatCopy = !variant.PerTensor } : null;
            var net = bf16?.Compute ?? model;
            net.SetGradCheckpointing(t.Checkpointing);
            net.Kernels = variant.Kernels(net.Kernels);
            net.Bert.FusedQkv = variant.Qkv;
            net.Bert.SkipMaskWhenUnpadded = variant.NoMask;
            var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(config));
            var pixels = randn(t.Batch, 3, config.ImageResolution, config.ImageResolution, device: device);
            var ids = BenchTrainStepCommand.RandomIds(t.Batch, config.VocabSize, t.ContextLength, variant.Full).to(device);
            return new Rig(variant, model, bf16, optimizer, pixels, ids);
        }

        public float Step() => TrainStep.Run(model, optimizer, pixels, ids, bf16: bf16).Loss; // reading the loss waits for the step

        public void Dispose()
        {
            optimizer.Dispose();
            bf16?.Dispose();
            model.Dispose();
            pixels.Dispose();
            ids.Dispose();
        }
    }

    // Device work is asynchronous: wait for it before reading a clock (a no-op on the CPU, which tests use in its place).
    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    // CUDA's out-of-memory error as libtorch reports it through TorchSharp: the batch does not fit.
    static bool OutOfMemory(Exception e) => e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase);

    internal static object Time(string archName, Device device, Timing t, IReadOnlyList<Variant> variants)
    {
        ClipConfig config = Architectures.Resolve(archName);
        var rigs = new List<Rig>();
        var failed = new Dictionary<string, string>();
        var phases = new Dictionary<string, object>();
        var enqueue = new Dictionary<string, object>();
        object? profiled = null;
        try
        {
            foreach (var v in variants)
            {
                try
                {
                    rigs.Add(Rig.Build(v, config, device, t));
                }
                catch (Exception e) when (OutOfMemory(e))
                {
                    failed[v.Name] = OneLine(e);
                }
            }
            for (int round = 0; round < t.Rounds; round++)
            {
                // Later rounds go the other way round, so that no variant always runs first.
                foreach (var rig in round % 2 == 0 ? rigs : Enumerable.Reverse(rigs))
                {
                    if (rig.Error is not null) continue;
                    try
                    {
                        var times = new List<double>();
                        int warm = round == 0 ? t.Warmup : Math.Min(t.Warmup, 1);
                        for (int i = 0; i < warm + t.Steps; i++)
                        {
                            Synchronize(device);
                            var watch = Stopwatch.StartNew();
                            rig.Loss = rig.Step();
                            Synchronize(device);
                            if (i >= warm) times.Add(watch.Elapsed.TotalMilliseconds);
                        }
                        rig.Times.AddRange(times);
                        rig.RoundMedians.Add(Math.Round(BenchTrainStepCommand.Median(times), 2));
                    }
                    catch (Exception e) when (OutOfMemory(e))
                    {
                        rig.Error = OneLine(e);
                    }
                }
            }
            foreach (var rig in rigs.Where(r => r.Error is null && t.PhaseSteps > 0))
            {
                // Where a step's time goes: extra steps cut into their phases, each ended by a synchronize (they add up
                // to a little more than a step, which runs without the cuts); then as many steps timed until the last
                // kernel is queued (host) and until it has run (device): host close to total means the host is the limit.
                phases[rig.Variant.Name] = BenchTrainStepCommand.Phases(rig.Model, rig.Optimizer, rig.Pixels, rig.Ids, t.PhaseSteps,
                    () => Synchronize(device), rig.Bf16);
                enqueue[rig.Variant.Name] = HostAndDevice(rig, t.PhaseSteps, device);
            }
            if (t.ProfileStep && rigs.FirstOrDefault(r => r.Error is null) is Rig first)
                profiled = ProfiledStep(first, device);
        }
        finally
        {
            foreach (var rig in rigs) rig.Dispose();
        }
        var results = variants.Select(v => rigs.FirstOrDefault(r => r.Variant == v) is { Error: null, Times.Count: > 0 } rig
            ? (object)new
            {
                variant = v.Name, fits = true, ms_per_step_median = Math.Round(BenchTrainStepCommand.Median(rig.Times), 2),
                samples_per_s = Math.Round(t.Batch * 1000.0 / BenchTrainStepCommand.Median(rig.Times), 2), round_medians_ms = rig.RoundMedians,
                ms_per_step = rig.Times.Select(x => Math.Round(x, 2)).ToArray(), final_loss = rig.Loss,
                phases_ms = phases.GetValueOrDefault(v.Name), host_vs_device_ms = enqueue.GetValueOrDefault(v.Name),
                bf16_recast = rig.Bf16 is null ? null : rig.Bf16.FlatPulls > 0 && rig.Bf16.PerTensorPulls == 0 ? "flat" : rig.Bf16.FlatPulls == 0 ? "per tensor" : $"flat {rig.Bf16.FlatPulls}, per tensor {rig.Bf16.PerTensorPulls}",
                kernels = (rig.Bf16?.Compute ?? rig.Model).Kernels,
            }
            : new { variant = v.Name, fits = false, error = failed.GetValueOrDefault(v.Name) ?? rigs.First(r => r.Variant == v).Error });
        var list = results.ToList();
        return new
        {
            bench = "gpu-train-step", side = "cnclip", arch = config.Name, device = device.ToString(), batch = t.Batch, context_length = t.ContextLength,
            precision = t.Precision == "bf16" ? "bf16 compute, fp32 master weights" : "fp32", grad_checkpointing = t.Checkpointing,
            steps = t.Steps, rounds = t.Rounds, variants = list, profiled_step = profiled,
        };
    }

    static string OneLine(Exception e) => e.Message.ReplaceLineEndings(" | ") is var m && m.Length > 300 ? m[..300] : e.Message.ReplaceLineEndings(" | ");

    // Medians over n steps of the time until TrainStep.Queue returns (the host has queued every kernel) and until the
    // device has run them.
    static object HostAndDevice(Rig rig, int n, Device device)
    {
        var host = new List<double>();
        var total = new List<double>();
        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            Synchronize(device);
            var watch = Stopwatch.StartNew();
            TrainStep.Queue(rig.Model, rig.Optimizer, rig.Pixels, rig.Ids, bf16: rig.Bf16);
            host.Add(watch.Elapsed.TotalMilliseconds);
            Synchronize(device);
            total.Add(watch.Elapsed.TotalMilliseconds);
        }
        return new { host_queued = Math.Round(BenchTrainStepCommand.Median(host), 2), device_done = Math.Round(BenchTrainStepCommand.Median(total), 2) };
    }

    // One more step between cuProfilerStart and cuProfilerStop (the driver's calls, so that no CUDA runtime library has
    // to be found): `ncu --profile-from-start off` then profiles exactly this step's kernels, none of the warm-up's.
    static object ProfiledStep(Rig rig, Device device)
    {
        Synchronize(device);
        int start, stop;
        var watch = Stopwatch.StartNew();
        try
        {
            start = CudaDriver.cuProfilerStart();
            rig.Step();
            Synchronize(device);
            stop = CudaDriver.cuProfilerStop();
        }
        catch (DllNotFoundException e)
        {
            return new { error = OneLine(e) };
        }
        return new { variant = rig.Variant.Name, ms = Math.Round(watch.Elapsed.TotalMilliseconds, 2), cu_profiler_start = start, cu_profiler_stop = stop };
    }

    static class CudaDriver
    {
        [DllImport("libcuda.so.1")]
        public static extern int cuProfilerStart();

        [DllImport("libcuda.so.1")]
        public static extern int cuProfilerStop();
    }
}
