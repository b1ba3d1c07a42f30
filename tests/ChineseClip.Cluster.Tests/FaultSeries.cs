using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Shards;
using ChineseClip.Model.Checkpoints;
using Grpc.Core;
using Grpc.Net.Client;
using StackExchange.Redis;

namespace ChineseClip.Cluster.Tests;

public enum FaultKind { WorkerKill, PreprocessorKill, CoordinatorKill, RedisRestart, WorkerStall }

/// <summary>A fault to inject once the schedule's global step (steps of the finished stages plus the running one's)
/// reaches <see cref="AtStep"/>.</summary>
public sealed record Fault(int AtStep, FaultKind Kind, int Worker, TimeSpan Delay);

public sealed record FaultSeriesSettings
{
    public int Seed { get; init; } = 14;
    public int Faults { get; init; } = 10;
    /// <summary>Demo data scale (DemoDataGenerator) and each stage's epochs.</summary>
    public double Scale { get; init; } = 1.0;
    public int[] Epochs { get; init; } = [20, 6, 6];
    public int BatchSize { get; init; } = 16;
    public int Workers { get; init; } = 2;
    public string Redis { get; init; } = "garnet";
    public TimeSpan RingTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public int PairsPerShard { get; init; } = 16;
    /// <summary>The largest weight difference allowed between the run with faults and the one without: the
    /// data-parallel tests' tolerance for whole training runs (1 vs 2 processes, same global batch).</summary>
    public double WeightTolerance { get; init; } = 1e-4;
    public double LossTolerance { get; init; } = 1e-3;
    /// <summary>Faults given instead of drawn ("WorkerStall@21,WorkerKill@30:1": kind@global step[:worker]), to
    /// replay a failure seen in a drawn series.</summary>
    public IReadOnlyList<Fault>? Given { get; init; }

    /// <summary>The series the long benchmark runs take their settings from: CNCLIP_FAULT_SEED, CNCLIP_FAULTS,
    /// CNCLIP_FAULT_SCALE, CNCLIP_FAULT_EPOCHS (e.g. 20,6,6), CNCLIP_FAULT_REDIS (garnet or redis).</summary>
    public FaultSeriesSettings FromEnvironment()
    {
        string? Get(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        var inv = CultureInfo.InvariantCulture;
        return this with
        {
            Seed = Get("CNCLIP_FAULT_SEED") is { } seed ? int.Parse(seed, inv) : Seed,
            Faults = Get("CNCLIP_FAULTS") is { } faults ? int.Parse(faults, inv) : Faults,
            Scale = Get("CNCLIP_FAULT_SCALE") is { } scale ? double.Parse(scale, inv) : Scale,
            Epochs = Get("CNCLIP_FAULT_EPOCHS") is { } epochs ? epochs.Split(',').Select(e => int.Parse(e, inv)).ToArray() : Epochs,
            Redis = Get("CNCLIP_FAULT_REDIS") ?? Redis,
            Given = Get("CNCLIP_FAULT_PLAN") is { } plan ? ParsePlan(plan) : Given,
        };
    }

    public static List<Fault> ParsePlan(string plan) => plan.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(f =>
    {
        var parts = f.Split('@', ':');
        if (parts.Length is < 2 or > 3 || !Enum.TryParse<FaultKind>(parts[0], out var kind))
            throw new FormatException($"CNCLIP_FAULT_PLAN: '{f}' is not kind@step[:worker] (kinds: {string.Join(", ", Enum.GetNames<FaultKind>())})");
        return new Fault(int.Parse(parts[1], CultureInfo.InvariantCulture), kind, parts.Length == 3 ? int.Parse(parts[2], CultureInfo.InvariantCulture) : 0,
            TimeSpan.FromSeconds(2));
    }).OrderBy(f => f.AtStep).ToList();
}

/// <summary>One schedule (the demo's three stages) run twice on one cluster of plain processes: first without faults
/// (the reference), then with faults injected at seeded random points: SIGKILL of a worker (started again), SIGKILL of
/// the preprocessor while it builds a shard (started again), SIGKILL of the coordinator (started again), a restart of
/// Redis/Garnet, and a worker stopped (SIGSTOP) for longer than the ring timeout, then continued. The run with faults
/// must succeed with every step of every stage done once, the same loss at every step and the same final weights as the
/// reference, no process left behind and no partial shard or checkpoint.</summary>
public sealed class FaultSeries(FaultSeriesSettings settings, Action<string> output)
{
    readonly List<string> _log = [];
    readonly Stopwatch _clock = new();

    void Log(string line)
    {
        string stamped = $"[{_clock.Elapsed.TotalSeconds,7:F1} s] {line}";
        lock (_log) _log.Add(stamped);
        output(stamped);
    }

    public IReadOnlyList<string> FaultLog
    {
        get { lock (_log) return _log.ToList(); }
    }

    /// <summary>The faults of the series: each kind once (when there are at least five), the rest drawn; points drawn
    /// over the schedule's steps (a preprocessor kill at a stage's start, where its shards are built).</summary>
    public static List<Fault> Plan(FaultSeriesSettings settings, IReadOnlyList<int> stageSteps)
    {
        if (settings.Given is { } given) return given.ToList();
        var random = new Random(settings.Seed);
        var kinds = Enum.GetValues<FaultKind>().ToList();
        var drawn = Enumerable.Range(0, settings.Faults).Select(i => i < kinds.Count ? kinds[i] : kinds[random.Next(kinds.Count)])
            .OrderBy(_ => random.Next()).ToList();
        int total = stageSteps.Sum();
        var faults = new List<Fault>();
        foreach (var kind in drawn)
        {
            int at = kind == FaultKind.PreprocessorKill
                ? stageSteps.Take(random.Next(stageSteps.Count)).Sum() // a stage's start, where its shards are built
                : 2 + random.Next(Math.Max(1, total - 4));
            faults.Add(new Fault(at, kind, random.Next(settings.Workers), TimeSpan.FromSeconds(1 + 3 * random.NextDouble())));
        }
        return faults.OrderBy(f => f.AtStep).ToList();
    }

    public Schedule DemoSchedule(string demo, string name)
    {
        var schedule = new Schedule { Name = name };
        string[] lr = ["0.002", "0.0005", "0.0005"];
        for (int i = 0; i < 3; i++)
        {
            string data = Path.Combine(demo, DemoDataGenerator.Datasets[i]);
            schedule.Stages.Add(new Stage
            {
                Name = DemoDataGenerator.Datasets[i], TrainData = data, ValData = data, Arch = Path.Combine(demo, "tiny-arch.json"),
                Vocab = Path.Combine(demo, "vocab.txt"), Init = i == 0 ? StageInit.InitScratch : StageInit.InitBestOfPrevious,
                Workers = settings.Workers, // the first start waits for all workers: the same global batch as the reference
                Hyperparameters =
                {
                    ["batch_size"] = $"{settings.BatchSize}", ["max_epochs"] = $"{settings.Epochs[i]}", ["lr"] = lr[i], ["warmup"] = "2",
                    ["context_length"] = "24", ["valid_batch_size"] = "100", ["log_interval"] = "1", ["save_step_frequency"] = "3",
                },
            });
        }
        return schedule;
    }

    public sealed record Outcome(ScheduleStatus Reference, ScheduleStatus Faulted, int Injected, double WorstWeightDifference,
        double WorstLossDifference, IReadOnlyList<string> Leftovers, TimeSpan Duration);

    public async Task<Outcome> RunAsync(string root)
    {
        _clock.Restart();
        string demo = Path.Combine(root, "demo");
        DemoDataGenerator.Generate(demo, seed: 1, scale: settings.Scale);
        Directory.CreateDirectory(ClusterFixture.LogDirectory);
        foreach (string old in Directory.GetFiles(ClusterFixture.LogDirectory, "fault-*.log")) File.Delete(old);
        using var cluster = new FaultCluster(root, settings.Redis, settings.Workers, settings.RingTimeout, settings.PairsPerShard);
        _redisPort = cluster.RedisPort;
        _cluster = cluster;
        cluster.Output += OnOutput;
        try
        {
            cluster.StartAll();
            using var channel = GrpcChannel.ForAddress(cluster.CoordinatorAddress);
            var client = new Coordinator.CoordinatorClient(channel);
            await Until("the workers joined", async () => (await client.ListWorkersAsync(new ListWorkersRequest())).Workers.Count == settings.Workers);
            Log($"cluster up: {settings.Redis}, coordinator, {settings.Workers} workers, preprocessor-0; seed {settings.Seed}, {settings.Faults} faults, "
                + $"demo scale {settings.Scale}, epochs {string.Join("/", settings.Epochs)}, global batch {settings.BatchSize * settings.Workers}");

            var reference = await RunToEnd(client, DemoSchedule(demo, "reference"), null, cluster);
            Assert.True(reference.State == RunState.Succeeded, $"the reference run: {reference.State}: {reference.Error}");
            var stageSteps = reference.Stages.Select(s => (int)s.Progress.Steps).ToList();
            Log($"reference run succeeded: {string.Join(", ", reference.Stages.Select(s => $"{s.Name} {s.Progress.Steps} steps"))}");

            _stageOffsets = stageSteps.Select((_, i) => stageSteps.Take(i).Sum()).ToArray();
            var plan = Plan(settings, stageSteps);
            Log("plan: " + string.Join("; ", plan.Select(f => $"{f.Kind} at step {f.AtStep}")));
            var faulted = await RunToEnd(client, DemoSchedule(demo, "with faults"), plan, cluster);
            Assert.True(faulted.State == RunState.Succeeded, $"the run with faults: {faulted.State}: {faulted.Error}\n{string.Join("\n", FaultLog)}");
            Log($"run with faults succeeded: {string.Join(", ", faulted.Stages.Select(s => $"{s.Name}: {s.Recoveries} re-forms ({s.Grown} to grow), attempt {s.Attempt}"))}");

            double worstLoss = 0, worstWeight = 0;
            for (int i = 0; i < faulted.Stages.Count; i++)
            {
                var (f, r) = (faulted.Stages[i], reference.Stages[i]);
                StageChecks.AssertEveryStepOnce(r);
                var resumes = StageChecks.AssertEveryStepOnce(f);
                // The sampler order: every step trained (also those redone after a resume) has the reference's loss at that step.
                var referenceLoss = Losses(r).GroupBy(l => l.Step).ToDictionary(g => g.Key, g => g.Last().Loss);
                var differing = new List<string>();
                foreach (var (step, loss) in Losses(f))
                {
                    double difference = Math.Abs(loss - referenceLoss[step]);
                    worstLoss = Math.Max(worstLoss, difference);
                    if (difference > settings.LossTolerance) differing.Add($"{step}: {loss:F4} against {referenceLoss[step]:F4}");
                }
                if (differing.Count > 0)
                    Log($"stage {f.Name}: {differing.Count} logged step(s) with another loss than the reference's; the first: {string.Join("; ", differing.Take(6))}");
                Log($"stage {f.Name}: largest loss difference per stretch of steps: {string.Join("; ", Stretches(f, referenceLoss))}");
                var weights = new[] { WorstDifference(f.LastCheckpoint, r.LastCheckpoint), WorstDifference(f.BestCheckpoint, r.BestCheckpoint) }.MaxBy(d => d.Scaled);
                worstWeight = Math.Max(worstWeight, weights.Scaled);
                Log($"stage {f.Name}: {f.Progress.Steps} steps each once ({resumes.Count} resume(s)"
                    + $"{string.Concat(resumes.Select(m => $", at step {m.GetProperty("step")} on {m.GetProperty("world_size")} worker(s)"))}), "
                    + $"largest weight difference to the reference {weights.Scaled:E2}: {weights.Where}");
            }
            Log($"largest loss difference at any step {worstLoss:E2}, largest weight difference {worstWeight:E2}");
            Assert.True(worstLoss <= settings.LossTolerance, $"a step's loss differs from the reference's by {worstLoss} (a different batch?)");
            Assert.True(worstWeight <= settings.WeightTolerance, $"final weights differ from the reference's by {worstWeight}");

            var leftovers = CheckFiles(root);
            cluster.StopAll();
            var orphans = cluster.StillRunning().Concat(ProcessTree.All().Select(p => ProcessTree.Snapshot(p.Pid)).OfType<ProcessTree.Seen>()
                .Where(p => p.CommandLine.Contains(root, StringComparison.Ordinal))).Distinct().ToList();
            Log(orphans.Count == 0 ? "stopped: no process left behind" : $"left behind: {string.Join("; ", orphans)}");
            Assert.Empty(orphans);
            return new Outcome(reference, faulted, _injected, worstWeight, worstLoss, leftovers, _clock.Elapsed);
        }
        catch
        {
            foreach (string line in FaultLog) output(line);
            throw;
        }
    }

    /// <summary>The largest loss difference to the reference in each stretch of training between two resumes, with the
    /// world size of the stretch: where a difference appears, and whether it grows.</summary>
    static List<string> Stretches(StageStatus stage, Dictionary<int, double> referenceLoss)
    {
        var stretches = new List<string>();
        string current = "from the start";
        double worst = 0;
        int steps = 0;
        void Close()
        {
            if (steps > 0) stretches.Add($"{current}, {steps} steps: {worst:E1}");
            (worst, steps) = (0, 0);
        }
        foreach (var m in StageChecks.Metrics(stage))
        {
            string type = m.GetProperty("type").GetString()!;
            if (type == "resume")
            {
                Close();
                current = $"after step {m.GetProperty("step")} on {m.GetProperty("world_size")}";
            }
            else if (type == "train")
            {
                worst = Math.Max(worst, Math.Abs(m.GetProperty("loss").GetDouble() - referenceLoss[m.GetProperty("step").GetInt32()]));
                steps++;
            }
        }
        Close();
        return stretches;
    }

    static List<(int Step, double Loss)> Losses(StageStatus stage) => StageChecks.Metrics(stage)
        .Where(m => m.GetProperty("type").GetString() == "train")
        .Select(m => (m.GetProperty("step").GetInt32(), m.GetProperty("loss").GetDouble())).ToList();

    /// <summary>The largest difference between the weights of two checkpoints, scaled by the size of the tensor's
    /// values where they exceed 1 (logit_scale is ~4.6): the data-parallel tests' 1e-4 is for weights of order 1.</summary>
    (double Scaled, string Where) WorstDifference(string a, string b)
    {
        var x = OfficialCheckpoint.Load(a, loadOptimizer: false).StateDict;
        var y = OfficialCheckpoint.Load(b, loadOptimizer: false).StateDict;
        try
        {
            Assert.Equal(x.Keys.Order(), y.Keys.Order());
            return x.Keys.Select(k =>
            {
                using var xf = x[k].to_type(TorchSharp.torch.ScalarType.Float32);
                using var yf = y[k].to_type(TorchSharp.torch.ScalarType.Float32);
                double diff = (xf - yf).abs().max().item<float>(), size = Math.Max(1, yf.abs().max().item<float>());
                return (diff / size, $"{k} ({diff:E2} on values up to {size:F2})");
            }).MaxBy(d => d.Item1);
        }
        finally
        {
            foreach (var t in x.Values.Concat(y.Values)) t.Dispose();
        }
    }

    /// <summary>Every checkpoint and shard under the runs folder reads back whole; returns the temporary files of
    /// writes that never finished (processes killed mid-write), which no reader takes for a checkpoint or shard.</summary>
    List<string> CheckFiles(string root)
    {
        int checkpoints = 0, shards = 0;
        foreach (string pt in Directory.EnumerateFiles(Path.Combine(root, "runs"), "*.pt", SearchOption.AllDirectories))
        {
            if (Path.GetFileName(pt).StartsWith('.')) continue;
            foreach (var t in OfficialCheckpoint.Load(pt, loadOptimizer: false).StateDict.Values) t.Dispose(); // the zip directory at the end proves the file whole
            checkpoints++;
        }
        foreach (string shard in Directory.EnumerateFiles(Path.Combine(root, "runs"), "*.shard", SearchOption.AllDirectories))
        {
            PackedShard.Open(shard);
            shards++;
        }
        var leftovers = Directory.EnumerateFiles(Path.Combine(root, "runs"), "*.tmp", SearchOption.AllDirectories).ToList();
        Log($"{checkpoints} checkpoints and {shards} shards read back whole; {leftovers.Count} unfinished temporary file(s)"
            + (leftovers.Count > 0 ? $": {string.Join(", ", leftovers.Select(Path.GetFileName))}" : ""));
        return leftovers;
    }

    int _injected, _planned;

    async Task<ScheduleStatus> RunToEnd(Coordinator.CoordinatorClient client, Schedule schedule, IReadOnlyList<Fault>? faults, FaultCluster cluster)
    {
        string id = (await Retry(async () => await client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = schedule }))).Id;
        faults ??= [];
        _planned = faults.Count;
        _liveStep = 0;
        _workerStage.Clear();
        _liveSchedule = id;
        var queue = new Queue<Fault>(faults);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(30);
        try
        {
            while (true)
            {
                var status = await Retry(async () => await client.GetScheduleAsync(new GetScheduleRequest { Id = id }));
                if (status.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled)
                {
                    foreach (var f in queue) Log($"{f.Kind} at step {f.AtStep}: the schedule ended first (not injected)");
                    return status;
                }
                Assert.True(DateTime.UtcNow < deadline, $"schedule {id} did not end within 30 minutes\n{string.Join("\n", FaultLog)}");
                if (cluster.Crashed() is { Count: > 0 } crashed)
                    Assert.Fail($"schedule {id}: {string.Join("\n", crashed)}\n{string.Join("\n", FaultLog)}");
                if (queue.Count > 0)
                {
                    Volatile.Write(ref _freezeAt, queue.Peek().AtStep);
                    if (_frozen || Reached(status) >= queue.Peek().AtStep)
                    {
                        var fault = queue.Dequeue();
                        // The workers go on with the next fault's step armed, so that it too lands where planned.
                        _armed = queue.Count > 0 ? queue.Peek().AtStep : int.MaxValue;
                        await Inject(fault, status, cluster, client, id);
                        continue;
                    }
                }
                await Task.Delay(50);
            }
        }
        finally
        {
            _liveSchedule = null;
            _armed = int.MaxValue;
            Thaw(cluster, except: null);
        }
    }

    // Where the workers are, from their output as they write it. The coordinator hears of steps at most once a second,
    // while a short stage's steps take tens of milliseconds: a fault planned at a step went in several steps late, and
    // near the end after the schedule was over (a clean-clone CI run injected 4 of 5). So when a worker's line shows the
    // planned step, every worker is stopped (SIGSTOP) right there, on the thread that read the line; the fault goes in
    // while they stand still, and they go on (SIGCONT) at once: a pause of milliseconds, far inside the ring timeout.
    static readonly System.Text.RegularExpressions.Regex RunLine = new(@"Run ([^/\s]+)/(\d+)/\d+: rank \d+ of"), StepLine = new(@"Global Steps: (\d+)/");
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _workerStage = new();
    readonly object _freezeLock = new();
    int[] _stageOffsets = [];
    volatile string? _liveSchedule;
    int _liveStep, _freezeAt = int.MaxValue, _armed = int.MaxValue;
    volatile bool _frozen;

    /// <summary>Follows the workers' lines: which stage of the schedule under test each one trains, and its step; stops
    /// the workers when the step of the next fault is reached.</summary>
    void OnOutput(string name, string line)
    {
        if (!name.StartsWith("worker-", StringComparison.Ordinal) || _liveSchedule is not { } schedule || _cluster is not { } cluster) return;
        if (RunLine.Match(line) is { Success: true } run)
        {
            if (run.Groups[1].Value == schedule) _workerStage[name] = int.Parse(run.Groups[2].Value, CultureInfo.InvariantCulture);
            else _workerStage.TryRemove(name, out _);
        }
        else if (StepLine.Match(line) is { Success: true } step && _workerStage.TryGetValue(name, out int stage) && stage < _stageOffsets.Length)
        {
            int global = _stageOffsets[stage] + int.Parse(step.Groups[1].Value, CultureInfo.InvariantCulture);
            int seen;
            while (global > (seen = Volatile.Read(ref _liveStep)) && Interlocked.CompareExchange(ref _liveStep, global, seen) != seen) { }
            lock (_freezeLock)
            {
                if (_frozen || global < Volatile.Read(ref _freezeAt)) return;
                foreach (string worker in cluster.Workers)
                {
                    try { cluster.Signal(worker, FaultCluster.SigStop); } catch (InvalidOperationException) { } // a worker killed and not yet back
                }
                _frozen = true;
            }
        }
    }

    /// <summary>Lets the stopped workers go on, all but <paramref name="except"/>, with the next fault's step armed
    /// (or not yet: a stall arms it when it ends, else the next fault's freeze would stop the others too and the stall
    /// would time nothing out).</summary>
    void Thaw(FaultCluster cluster, string? except, bool arm = true)
    {
        lock (_freezeLock)
        {
            Volatile.Write(ref _freezeAt, arm ? _armed : int.MaxValue);
            if (!_frozen) return;
            foreach (string worker in cluster.Workers.Where(w => w != except))
            {
                try { cluster.Signal(worker, FaultCluster.SigCont); } catch (InvalidOperationException) { }
            }
            _frozen = false;
        }
    }

    /// <summary>The furthest global step reached: from the workers' lines, or the coordinator's status if it is ahead.</summary>
    int Reached(ScheduleStatus s) => Math.Max(GlobalStep(s), Volatile.Read(ref _liveStep));

    static int GlobalStep(ScheduleStatus s) => s.Stages.Sum(st => st.State == RunState.Succeeded ? (int)(st.Progress?.Steps ?? 0)
        : st.State == RunState.Running && st.Progress is { } p ? (int)p.Step : 0);

    static string Where(ScheduleStatus s) => s.Stages.FirstOrDefault(st => st.State != RunState.Succeeded) is { } st
        ? $"stage {st.Name} {st.State.ToString().ToLowerInvariant()} step {st.Progress?.Step ?? 0}, on {string.Join("+", st.Members)}" : "done";

    async Task Inject(Fault fault, ScheduleStatus status, FaultCluster cluster, Coordinator.CoordinatorClient client, string id)
    {
        // A worker fault hits a member of the running stage when there is one.
        var members = status.Stages.FirstOrDefault(st => st.State == RunState.Running)?.Members.ToList() ?? [];
        string worker = members.Count > 0 ? members[fault.Worker % members.Count] : cluster.Workers[fault.Worker];
        int before = Reached(status), number = Interlocked.Increment(ref _injected);
        string head = $"fault {number}/{_planned} at global step {before} (coordinator's view: {Where(status)}):";
        // The workers may stand still (see OnOutput): the fault's first blow lands there, then they go on.
        switch (fault.Kind)
        {
            case FaultKind.WorkerKill:
            {
                int pid = cluster.Kill(worker);
                Thaw(cluster, except: null);
                await Task.Delay(fault.Delay);
                int again = cluster.Start(worker);
                Log($"{head} SIGKILL {worker} (pid {pid}); started again after {fault.Delay.TotalSeconds:F1} s (pid {again})");
                break;
            }
            case FaultKind.CoordinatorKill:
            {
                int pid = cluster.Kill("coordinator");
                Thaw(cluster, except: null);
                await Task.Delay(fault.Delay);
                int again = cluster.Start("coordinator");
                Log($"{head} SIGKILL coordinator (pid {pid}); started again after {fault.Delay.TotalSeconds:F1} s (pid {again})");
                break;
            }
            case FaultKind.RedisRestart:
            {
                int pid = cluster.Pid("redis");
                bool graceful = cluster.Terminate("redis");
                Thaw(cluster, except: null);
                await Task.Delay(fault.Delay);
                int again = cluster.Start("redis");
                Log($"{head} {settings.Redis} restarted (SIGTERM pid {pid}{(graceful ? "" : ", did not stop")}; down {fault.Delay.TotalSeconds:F1} s; pid {again})");
                break;
            }
            case FaultKind.WorkerStall:
            {
                var stall = settings.RingTimeout + TimeSpan.FromSeconds(10);
                int pid = cluster.Signal(worker, FaultCluster.SigStop);
                Thaw(cluster, except: worker, arm: false);
                // The next fault is armed once the ring timeout has fired (the stage re-forms without the stopped worker),
                // so that the others, going on alone, stop at its step rather than run past it.
                var armAfter = settings.RingTimeout + TimeSpan.FromSeconds(2);
                await Task.Delay(armAfter);
                Volatile.Write(ref _freezeAt, _armed);
                await Task.Delay(stall - armAfter);
                cluster.Signal(worker, FaultCluster.SigCont);
                Log($"{head} SIGSTOP {worker} (pid {pid}) for {stall.TotalSeconds:F0} s (ring timeout {settings.RingTimeout.TotalSeconds:F0} s), then SIGCONT");
                break;
            }
            case FaultKind.PreprocessorKill:
            {
                // At a stage's start: the preprocessor is held (SIGSTOP) until the stage's shard tasks are queued, then
                // let go and killed as soon as it holds one (the task must come back through its lease).
                int pid = cluster.Signal("preprocessor-0", FaultCluster.SigStop);
                Thaw(cluster, except: null);
                long inHand = 0;
                try
                {
                    using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{cluster.RedisPort},abortConnect=false,connectTimeout=1000");
                    async Task<long> Length(string list)
                    {
                        try { return await redis.GetDatabase().ListLengthAsync($"cnclip:preprocess:{list}"); }
                        catch (RedisException) { return 0; } // Redis restarting
                    }
                    var wait = Stopwatch.StartNew();
                    while (await Length("pending") + await Length("processing") == 0 && wait.Elapsed < TimeSpan.FromMinutes(2))
                    {
                        var now = await Retry(async () => await client.GetScheduleAsync(new GetScheduleRequest { Id = id }));
                        if (now.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled) break;
                        await Task.Delay(20);
                    }
                    cluster.Signal("preprocessor-0", FaultCluster.SigCont);
                    wait.Restart();
                    while ((inHand = await Length("processing")) == 0 && wait.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(2);
                }
                finally
                {
                    cluster.Signal("preprocessor-0", FaultCluster.SigCont);
                }
                cluster.Kill("preprocessor-0");
                await Task.Delay(fault.Delay);
                int again = cluster.Start("preprocessor-0");
                Log($"{head} SIGKILL preprocessor-0 (pid {pid}) with {inHand} shard task(s) in hand; started again after {fault.Delay.TotalSeconds:F1} s (pid {again})");
                break;
            }
        }
        // The next fault waits for the schedule to move on.
        var watch = Stopwatch.StartNew();
        await Until($"progress after fault {number}", async () =>
        {
            var now = await client.GetScheduleAsync(new GetScheduleRequest { Id = id });
            return Reached(now) > before || _frozen || now.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled;
        });
        var after = await Retry(async () => await client.GetScheduleAsync(new GetScheduleRequest { Id = id }));
        Log($"  going on after {watch.Elapsed.TotalSeconds:F1} s: {Where(after)}"
            + (after.Stages.FirstOrDefault(s => s.LastRecovery.Length > 0 && s.State != RunState.Succeeded) is { } re ? $" (last re-form: {re.LastRecovery})" : ""));
    }

    static async Task<T> Retry<T>(Func<Task<T>> call)
    {
        var deadline = DateTime.UtcNow + ClusterFixture.Patience;
        while (true)
        {
            try { return await call(); }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Unknown or StatusCode.Internal && DateTime.UtcNow < deadline)
            {
                await Task.Delay(300);
            }
        }
    }

    int _redisPort;
    FaultCluster? _cluster;

    async Task Until(string what, Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + ClusterFixture.Patience;
        while (!await Retry(condition))
        {
            // A process that crashed is not restarted by anyone: say so now rather than wait out the patience.
            if (_cluster?.Crashed() is { Count: > 0 } crashed)
                Assert.Fail($"{what}: {string.Join("\n", crashed)}\n{string.Join("\n", FaultLog)}");
            if (DateTime.UtcNow >= deadline)
                Assert.Fail($"{what}: not within {ClusterFixture.Patience.TotalMinutes} minutes\n{string.Join("\n", FaultLog)}\n{await QueueState()}");
            await Task.Delay(300);
        }
    }

    /// <summary>The preprocessing queue's keys, for a failure message.</summary>
    async Task<string> QueueState()
    {
        try
        {
            using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort},abortConnect=false,connectTimeout=2000");
            var db = redis.GetDatabase();
            var lines = new List<string>();
            foreach (string list in new[] { "pending", "processing", "dead" })
                lines.Add($"{list}: {string.Join(", ", await db.ListRangeAsync($"cnclip:preprocess:{list}"))}");
            lines.Add($"leases: {string.Join(", ", (await db.SortedSetRangeByScoreWithScoresAsync("cnclip:preprocess:leases")).Select(e => $"{e.Element}={e.Score}"))}");
            foreach (var key in redis.GetServer($"127.0.0.1:{_redisPort}").Keys(pattern: "cnclip:preprocess:task:*").Take(50))
                lines.Add($"{key}: {string.Join(", ", (await db.HashGetAllAsync(key)).Where(e => e.Name != "json").Select(e => $"{e.Name}={e.Value}"))}");
            return "queue: " + string.Join("\n  ", lines);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return $"queue: unreadable ({e.Message})";
        }
    }

    /// <summary>The outcome as one JSON line (what the benchmark script prints last).</summary>
    public static string Summary(FaultSeriesSettings settings, Outcome o) => JsonSerializer.Serialize(new
    {
        seed = settings.Seed, faults = o.Injected, redis = settings.Redis, scale = settings.Scale, epochs = settings.Epochs,
        succeeded = o.Faulted.State == RunState.Succeeded,
        steps = o.Faulted.Stages.Select(s => s.Progress.Steps).ToArray(),
        reforms = o.Faulted.Stages.Select(s => s.Recoveries).ToArray(),
        worst_weight_difference = o.WorstWeightDifference, worst_loss_difference = o.WorstLossDifference,
        unfinished_temporary_files = o.Leftovers.Count, seconds = Math.Round(o.Duration.TotalSeconds, 1),
    });
}
