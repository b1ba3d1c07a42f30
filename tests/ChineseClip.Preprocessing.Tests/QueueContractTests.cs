// The queue's contract, run against each backend (RedisQueueTests, GarnetQueueTests below).
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Shards;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace ChineseClip.Preprocessing.Tests;

/// <summary>Demo data written once per test run: stage 1's train split, its vocabulary.</summary>
public static class DemoFiles
{
    static readonly Lazy<(string DataDir, string Vocab)> Files = new(() =>
    {
        string root = Directory.CreateTempSubdirectory("cnclip-queue-demo").FullName;
        DemoDataGenerator.Generate(root, seed: 11, scale: 0.5);
        return (Path.Combine(root, DemoDataGenerator.Datasets[0]), Path.Combine(root, "vocab.txt"));
    });

    public static string DataDir => Files.Value.DataDir;
    public static string Vocab => Files.Value.Vocab;

    /// <summary>The train split cut into shards of <paramref name="pairsPerShard"/> pairs, as tasks writing to a new folder.</summary>
    public static (List<PreprocessTask> Tasks, string OutputDir) Plan(int pairsPerShard, int resolution, int maxShards = int.MaxValue)
    {
        string output = Directory.CreateTempSubdirectory("cnclip-queue-shards").FullName;
        var specs = ShardBuilder.Plan(DataDir, "train", pairsPerShard, resolution, 32, e => throw new InvalidDataException(e));
        return ([.. specs.Take(maxShards).Select(s => PreprocessTask.ForShard(s, Vocab, output, traceParent: null))], output);
    }
}

public abstract class QueueContractTests(QueueServer server)
{
    static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    static PreprocessingOptions Options(double leaseSeconds = 30) => new()
    {
        Queue = $"test:{Guid.NewGuid():N}", LeaseSeconds = leaseSeconds, MaxAttempts = 3, ReapSeconds = 0.5, TakeWaitSeconds = 1,
    };

    static PreprocessTask Task(string id) => new(id, "/data/muge", "train", 0, 0, 10, 64, 32, "/data/vocab.txt", "/shards");

    [Fact]
    public async Task A_new_task_is_always_queued_while_other_keys_change()
    {
        // Enqueueing is a transaction conditioned on the task's key not existing. A stage whose enqueue of one shard
        // answered "already there" for a key that was not (Garnet, in the fault series) waited for that shard forever.
        var queue = server.Queue(Options());
        var db = server.Connection.GetDatabase();
        using var stop = new CancellationTokenSource();
        var noise = System.Threading.Tasks.Task.Run(async () =>
        {
            for (long i = 0; !stop.IsCancellationRequested; i++)
                await db.HashSetAsync($"test:noise:{i % 64}", "n", i);
        });
        var refused = new List<string>();
        for (int i = 0; i < 400; i++)
        {
            string id = $"fresh-{Guid.NewGuid():N}";
            if (!await queue.EnqueueAsync(Task(id))) refused.Add(id);
        }
        await stop.CancelAsync();
        await noise;
        Assert.True(refused.Count == 0, $"{refused.Count} of 400 new tasks refused as if queued before: {string.Join(", ", refused.Take(3))}");
        Assert.Equal(400, (await queue.CountersAsync()).Queued);
    }

    [Fact]
    public async Task Tasks_are_taken_in_order_completed_once_and_counted()
    {
        var queue = server.Queue(Options());
        Assert.True(await queue.EnqueueAsync(Task("a")));
        Assert.True(await queue.EnqueueAsync(Task("b")));
        Assert.False(await queue.EnqueueAsync(Task("a"))); // same id: one task
        Assert.Equal(new QueueCounters(2, 0, 0, 0, 0), await queue.CountersAsync());

        var first = await queue.TakeAsync(TimeSpan.FromSeconds(1));
        Assert.NotNull(first);
        Assert.Equal(Task("a"), first.Task);
        Assert.Equal(0, first.Failures);
        Assert.Equal(new QueueCounters(1, 1, 0, 0, 0), await queue.CountersAsync());
        Assert.True(await queue.CompleteAsync(first));
        Assert.False(await queue.CompleteAsync(first)); // a second completion changes nothing
        Assert.Equal(new QueueCounters(1, 0, 1, 0, 0), await queue.CountersAsync());

        var second = await queue.TakeAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("b", second?.Task.Id);
        Assert.True(await queue.CompleteAsync(second!));
        var clock = Stopwatch.StartNew();
        Assert.Null(await queue.TakeAsync(TimeSpan.FromSeconds(1)));
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.8, 10); // BLMOVE waited for its timeout
        Assert.Equal(new QueueCounters(0, 0, 2, 0, 0), await queue.CountersAsync());
        Assert.Equal(0, await queue.ReapAsync());
    }

    [Fact]
    public async Task An_expired_lease_is_redelivered_and_its_old_holder_can_no_longer_complete_it()
    {
        var queue = server.Queue(Options(leaseSeconds: 1));
        await queue.EnqueueAsync(Task("slow"));
        var lost = (await queue.TakeAsync(TimeSpan.FromSeconds(1)))!;
        Assert.Equal(0, await queue.ReapAsync()); // not yet expired
        await System.Threading.Tasks.Task.Delay(1300);
        Assert.Equal(1, await queue.ReapAsync());
        Assert.Equal(new QueueCounters(1, 0, 0, 0, 1), await queue.CountersAsync());

        var again = (await queue.TakeAsync(TimeSpan.FromSeconds(1)))!;
        Assert.Equal("slow", again.Task.Id);
        Assert.Equal(1, again.Failures);
        Assert.False(await queue.RenewAsync(lost));
        Assert.False(await queue.CompleteAsync(lost));
        Assert.False(await queue.FailAsync(lost, "too late"));
        Assert.True(await queue.CompleteAsync(again));
        Assert.Equal(new QueueCounters(0, 0, 1, 0, 1), await queue.CountersAsync());
    }

    [Fact]
    public async Task A_renewed_lease_outlives_its_first_deadline()
    {
        var queue = server.Queue(Options(leaseSeconds: 1));
        await queue.EnqueueAsync(Task("long"));
        var lease = (await queue.TakeAsync(TimeSpan.FromSeconds(1)))!;
        for (int i = 0; i < 3; i++)
        {
            await System.Threading.Tasks.Task.Delay(500);
            Assert.True(await queue.RenewAsync(lease));
            Assert.Equal(0, await queue.ReapAsync());
        }
        Assert.True(await queue.CompleteAsync(lease));
        Assert.Equal(new QueueCounters(0, 0, 1, 0, 0), await queue.CountersAsync());
    }

    [Fact]
    public async Task A_task_that_fails_three_times_goes_to_the_dead_letter_list_with_its_last_error()
    {
        var options = Options();
        var queue = server.Queue(options);
        var consumer = new QueueConsumer(queue, options, NullLogger.Instance);
        string missing = Path.Combine(Path.GetTempPath(), $"cnclip-no-such-dataset-{Guid.NewGuid():N}");
        await queue.EnqueueAsync(Task("poison") with { DataDir = missing, Vocab = DemoFiles.Vocab });
        await queue.EnqueueAsync(Task("fine"));
        for (int attempt = 1; attempt <= 3; attempt++)
        {
            var lease = (await queue.TakeAsync(TimeSpan.FromSeconds(1)))!;
            if (lease.Task.Id == "fine") lease = (await queue.TakeAsync(TimeSpan.FromSeconds(1)))!; // leave it running
            Assert.Equal("poison", lease.Task.Id);
            Assert.Equal(attempt - 1, lease.Failures);
            await consumer.ProcessAsync(lease); // the real shard build: throws FileNotFoundException
        }
        var counters = await queue.CountersAsync();
        Assert.Equal((0, 1, 0, 1, 2), (counters.Queued, counters.Running, counters.Done, counters.Failed, counters.Retries));
        var letter = Assert.Single(await queue.DeadLettersAsync());
        Assert.Equal("poison", letter.TaskId);
        Assert.Equal(3, letter.Attempts);
        Assert.Equal($"{Path.Combine(missing, "train_texts.jsonl")}: text file not found", letter.Error);
        Assert.Equal(missing, PreprocessTask.FromJson(letter.TaskJson, "dead letter").DataDir);
        Assert.False(await queue.EnqueueAsync(Task("poison"))); // a dead task is not silently re-run
    }

    [Fact]
    public async Task A_consumer_writes_the_shard_and_continues_the_trace_of_whoever_enqueued_the_task()
    {
        var options = Options();
        var queue = server.Queue(options);
        var (tasks, output) = DemoFiles.Plan(pairsPerShard: 20, resolution: 32, maxShards: 1);
        var started = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "test" or PreprocessingTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (started) started.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("test");
        string traceId;
        using (var enqueuing = source.StartActivity("plan shards"))
        {
            traceId = enqueuing!.TraceId.ToString();
            await queue.EnqueueAsync(tasks[0] with { TraceParent = PreprocessingTelemetry.CurrentTraceParent() });
        }

        long shardsDone = 0; // the meter is process-wide: other tests' shards may count too
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, l) => { if (instrument.Meter.Name == PreprocessingTelemetry.Name) l.EnableMeasurementEvents(instrument); },
        };
        meters.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "cnclip.preprocess.shards_done") Interlocked.Add(ref shardsDone, value);
        });
        meters.Start();

        var lease = (await queue.TakeAsync(TimeSpan.FromSeconds(1)))!;
        Assert.StartsWith($"00-{traceId}-", lease.Task.TraceParent);
        await new QueueConsumer(queue, options, NullLogger.Instance).ProcessAsync(lease);
        Assert.True(Interlocked.Read(ref shardsDone) >= 1, "no shards_done measurement");

        Assert.Equal(new QueueCounters(0, 0, 1, 0, 0), await queue.CountersAsync());
        var shard = PackedShard.Open(Path.Combine(output, "train-00000.shard"));
        Assert.Equal(20, shard.Count);
        Activity processing;
        lock (started) processing = Assert.Single(started, a => a.Source.Name == PreprocessingTelemetry.Name && a.GetTagItem("cnclip.task.id") as string == tasks[0].Id);
        Assert.Equal(traceId, processing.TraceId.ToString());
        Assert.Equal(ActivityKind.Consumer, processing.Kind);
    }

    [Fact]
    public async Task A_worker_killed_mid_task_loses_its_lease_and_another_worker_completes_the_shard_set_once()
    {
        var options = Options(leaseSeconds: 2);
        var queue = server.Queue(options);
        // 224 px shards of 150 pairs take long enough (hundreds of ms) to be caught in the middle.
        var (tasks, output) = DemoFiles.Plan(pairsPerShard: 150, resolution: 224);
        foreach (var t in tasks) Assert.True(await queue.EnqueueAsync(t));

        using var first = new PreprocessorProcess(server.ConnectionString, options);
        string held = await WaitForAsync(async () =>
        {
            var processing = await server.Connection.GetDatabase().ListRangeAsync($"{options.Queue}:processing");
            var leases = await server.Connection.GetDatabase().SortedSetLengthAsync($"{options.Queue}:leases");
            return processing.Length == 1 && leases == 1 ? (string?)processing[0] : null;
        }, first.Log);
        first.Kill(); // SIGKILL: no chance to complete, fail or release
        Assert.False(File.Exists(held), $"the killed worker had finished {held} already: the test did not catch it mid-task");
        var afterKill = await queue.CountersAsync();
        Assert.Equal(1, afterKill.Running);

        using var second = new PreprocessorProcess(server.ConnectionString, options);
        await WaitForAsync(async () => (await queue.CountersAsync()).Done == tasks.Count ? "" : null, () => first.Log() + second.Log());

        var counters = await queue.CountersAsync();
        Assert.Equal((0, 0, tasks.Count, 0), (counters.Queued, counters.Running, counters.Done, counters.Failed));
        Assert.True(counters.Retries >= 1, $"the held task was not redelivered: {counters}");
        // The worker logs a shard after it marks it done, so its line may reach us a moment after the counter.
        await WaitForAsync(() => System.Threading.Tasks.Task.FromResult(second.Log().Contains($"shard {held}:") ? "" : null), () => first.Log() + second.Log());
        var set = ShardSet.Open(output, "train");
        Assert.Equal(tasks.Count, set.Shards.Count);
        var pairs = set.Shards.SelectMany(s => Enumerable.Range(0, s.Count).Select(s.PairIndex)).ToList();
        Assert.Equal(Enumerable.Range(0, tasks.Sum(t => t.PairCount)).Select(i => (long)i), pairs); // each pair once
        Assert.Equal(tasks.Select(t => t.Id).Order(), Directory.GetFiles(output, "*.shard").Order());
    }

    static async Task<string> WaitForAsync(Func<Task<string?>> probe, Func<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Timeout)
        {
            if (await probe() is { } found) return found;
            await System.Threading.Tasks.Task.Delay(10);
        }
        throw new TimeoutException($"gave up after {Timeout.TotalSeconds} s; worker output:\n{log()}");
    }
}

public sealed class RedisQueueTests(RedisServer server) : QueueContractTests(server), IClassFixture<RedisServer>;

public sealed class GarnetQueueTests(EmbeddedGarnet server) : QueueContractTests(server), IClassFixture<EmbeddedGarnet>;

/// <summary>The real ChineseClip.Preprocessor worker as a child process; killed (SIGKILL) on dispose.</summary>
sealed class PreprocessorProcess : IDisposable
{
    readonly Process _process;
    readonly StringBuilder _log = new();

    public PreprocessorProcess(string connectionString, PreprocessingOptions options)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(WorkerDll());
        start.Environment["ConnectionStrings__redis"] = connectionString;
        start.Environment["Preprocessing__Queue"] = options.Queue;
        start.Environment["Preprocessing__LeaseSeconds"] = options.LeaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["Preprocessing__ReapSeconds"] = options.ReapSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["Preprocessing__TakeWaitSeconds"] = options.TakeWaitSeconds.ToString();
        start.Environment["Logging__Console__FormatterName"] = "simple";
        start.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Log() { lock (_log) return _log.ToString(); }

    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        if (!_process.WaitForExit(10_000)) throw new TimeoutException("the worker did not exit after SIGKILL");
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    // The worker's build output: this test project's output path with the worker's project folder in place of ours.
    static string WorkerDll()
    {
        string ours = AppContext.BaseDirectory;
        const string marker = "/tests/ChineseClip.Preprocessing.Tests/";
        int at = ours.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0) throw new InvalidOperationException($"{ours}: not under {marker}");
        string dll = Path.Combine(ours[..at], "src/ChineseClip.Preprocessor", ours[(at + marker.Length)..], "ChineseClip.Preprocessor.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll}: the worker is not built", dll);
    }
}
