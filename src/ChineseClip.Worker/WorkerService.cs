// Joins the coordinator and trains what it is given, one stage run at a time; reconnects when the coordinator goes
// away (saying which run it is still in, so a restarted coordinator can follow it) and keeps training meanwhile.
// A run's span continues the coordinator's trace (the assignment's traceparent); the trainer's epoch spans are its children.
using System.Diagnostics;
using System.Text.Json.Nodes;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Distributed;
using ChineseClip.Training;
using ChineseClip.Training.Distributed;
using ChineseClip.Worker.Extensions;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace ChineseClip.Worker;

public sealed class WorkerService(Coordinator.CoordinatorClient coordinator, IOptions<WorkerOptions> options, ILogger<WorkerService> log,
    IServiceProvider services) : BackgroundService
{
    /// <summary>The worker's spans (ServiceDefaults exports "ChineseClip.*").</summary>
    public static readonly ActivitySource Source = new("ChineseClip.Worker");
    readonly WorkerOptions _options = options.Value;
    readonly object _lock = new();
    (string RunId, CancellationTokenSource Cancel, Task Task)? _current;

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        log.LogInformation("Worker {Name} ({Device}, {Threads} threads) joining the coordinator", _options.Name, _options.Device, _options.Threads);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                string busy;
                lock (_lock) busy = _current is { Task.IsCompleted: false } c ? c.RunId : "";
                var info = new WorkerInfo
                {
                    Name = _options.Name, Device = _options.Device, RingHost = _options.RingHost, BusyWith = busy,
                    Host = Environment.MachineName, Pid = Environment.ProcessId,
                };
                using var call = coordinator.Join(new JoinRequest { Worker = info }, cancellationToken: stop);
                await foreach (var command in call.ResponseStream.ReadAllAsync(stop))
                {
                    if (command.RunStage is { } assignment) Start(assignment);
                    else if (command.CancelStage is { } cancel) Cancel(cancel.RunId);
                }
                log.LogWarning("The coordinator closed the Join stream; rejoining");
            }
            catch (RpcException e) when (!stop.IsCancellationRequested)
            {
                log.LogWarning("Coordinator unreachable ({Status}: {Detail}); retrying in 2 s", e.StatusCode, e.Status.Detail);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            try { await Task.Delay(TimeSpan.FromSeconds(2), stop); } catch (OperationCanceledException) { break; }
        }
        lock (_lock) _current?.Cancel.Cancel();
    }

    void Start(StageAssignment assignment)
    {
        lock (_lock)
        {
            Task previous = Task.CompletedTask;
            if (_current is { Task.IsCompleted: false } running)
            {
                if (running.RunId == assignment.RunId) return;
                // The coordinator assigns a new run once the old one reported its end; the old task may still be
                // returning (or a cancel may still be on its way): let it finish first, within reason.
                running.Cancel.Cancel();
                previous = running.Task;
            }
            var cancel = new CancellationTokenSource();
            var task = Task.Run(async () =>
            {
                if (await Task.WhenAny(previous, Task.Delay(TimeSpan.FromSeconds(60))) != previous)
                {
                    await Report(new StageEndReport
                    {
                        RunId = assignment.RunId, Rank = assignment.Rank, Retryable = true,
                        Error = $"worker {_options.Name} is still busy with its previous run",
                    });
                    return;
                }
                // Training is CPU-bound and synchronous (TorchSharp): its own thread, not the thread pool.
                await Task.Factory.StartNew(() => Train(assignment, cancel.Token), TaskCreationOptions.LongRunning).Unwrap();
            });
            _current = (assignment.RunId, cancel, task);
        }
    }

    void Cancel(string runId)
    {
        lock (_lock)
        {
            if (_current is { } c && c.RunId == runId)
            {
                log.LogInformation("Cancelling run {Run}", runId);
                c.Cancel.Cancel();
            }
        }
    }

    async Task Train(StageAssignment a, CancellationToken cancel)
    {
        using var span = Source.StartActivity("train stage", ActivityKind.Internal, ParentOf(a));
        span?.SetTag("cnclip.schedule", a.ScheduleId);
        span?.SetTag("cnclip.run", a.RunId);
        span?.SetTag("cnclip.rank", a.Rank);
        span?.SetTag("cnclip.world_size", a.WorldSize);
        var report = new StageEndReport { RunId = a.RunId, Rank = a.Rank };
        try
        {
            var json = JsonNode.Parse(a.TrainOptionsJson)!.AsObject();
            if (!json.ContainsKey("threads")) json["threads"] = _options.Threads;
            if (!json.ContainsKey("device")) json["device"] = _options.Device;
            var trainOptions = TrainOptions.FromJson(json, $"run {a.RunId}", Environment.CurrentDirectory);
            if (services.GetService<ChineseClip.Preprocessing.ITaskQueue>() is { } queue && trainOptions.TrainShards is null)
            {
                int resolution = ChineseClip.Model.Architectures.Resolve(trainOptions.Arch).ImageResolution;
                string shards = Path.Combine(trainOptions.Logs, "shards", trainOptions.Name);
                shards = await new ChineseClip.Preprocessing.StageShards(queue, log).PrepareAsync(trainOptions.TrainData, trainOptions.Vocab, shards, resolution,
                    trainOptions.ContextLength, a.Rank, _options.PairsPerShard, cancel);
                trainOptions = trainOptions with { TrainShards = shards };
            }
            log.LogInformation("Run {Run}: rank {Rank} of {World}, training {Data} into {Dir}", a.RunId, a.Rank, a.WorldSize, trainOptions.TrainData,
                Path.Combine(trainOptions.Logs, trainOptions.Name));
            using ICollectives group = Collectives.Connect(a.Rank, a.WorldSize, new CoordinatorRendezvous(coordinator, a.RunId, cancel),
                trainOptions.Device, new RingOptions { Group = a.RunId, ListenHost = _options.RingHost, Timeout = TimeSpan.FromSeconds(_options.RingTimeoutSeconds) });
            using var writer = new LogWriter(log);
            var lastReport = Stopwatch.StartNew();
            // The newest checkpoint goes to the coordinator when it is written and again with every later report (a
            // lost report is repaired by the next): a recovery of the stage resumes from it.
            (string Path, long Step) checkpoint = ("", 0);
            TrainProgress? last = null;
            var trainer = new Trainer(trainOptions, writer, group)
            {
                OnProgress = p =>
                {
                    last = p;
                    // One report a second at most, but always the ones with validation results.
                    if (p.Validation is null && lastReport.Elapsed < TimeSpan.FromSeconds(1) && p.Step != p.Steps) return;
                    lastReport.Restart();
                    _ = ReportProgress(a, p, checkpoint);
                },
                OnCheckpoint = (path, step) =>
                {
                    checkpoint = (path, step);
                    _ = ReportProgress(a, null, checkpoint);
                },
            };
            trainer.Run(cancel);
            // The stage's last progress (its step count and validation) is on record before its end is reported: the
            // reports above are throttled and fire-and-forget, so the last one may have been lost to a coordinator
            // restart or arrive after the end report, which closes the stage (seen in the fault series: a succeeded
            // stage without progress).
            if (last is not null && a.Rank == 0) await ReportProgress(a, last, checkpoint, patiently: true);
            var layout = trainer.Checkpoints;
            report.Succeeded = true;
            report.BestCheckpoint = File.Exists(layout.Best) ? layout.Best : "";
            report.LastCheckpoint = layout.Latest;
            log.LogInformation("Run {Run}: rank {Rank} done", a.RunId, a.Rank);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // The coordinator asked (it re-forms or ends the stage, or a newer run replaced this one), so it has moved on
            // and ignores this report; retryable all the same, so that a cancel it did not mean (a stale command) costs an
            // attempt, never the schedule (a clean-clone CI run failed a schedule on "rank 0: cancelled" after a stall).
            report.Error = "cancelled";
            report.Retryable = true;
            log.LogInformation("Run {Run}: cancelled", a.RunId);
        }
        catch (Exception e)
        {
            report.Error = $"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" | ")}";
            report.Retryable = IsRetryable(e);
            span?.SetStatus(ActivityStatusCode.Error, report.Error);
            log.LogError(e, "Run {Run}: rank {Rank} failed ({Kind}): {Error}", a.RunId, a.Rank, report.Retryable ? "retryable" : "final", report.Error);
        }
        await Report(report);
    }

    /// <summary>The coordinator's span of the run, from the assignment; none (default) from a coordinator that sent none.</summary>
    internal static ActivityContext ParentOf(StageAssignment a) =>
        ActivityContext.TryParse(a.Traceparent, null, isRemote: true, out var parent) ? parent : default;

    /// <summary>Bad inputs (a missing file, malformed data, a checkpoint that does not fit, an invalid option) fail the
    /// stage at once: another attempt would meet them again. Anything else (a lost peer, a timeout, a client library's
    /// transient fault) is worth another attempt from the newest checkpoint; the coordinator bounds the attempts.</summary>
    internal static bool IsRetryable(Exception e) => e switch
    {
        AggregateException { InnerExceptions.Count: 1 } agg => IsRetryable(agg.InnerException!),
        FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException => false,
        InvalidDataException or FormatException or ArgumentException or NotSupportedException or System.Text.Json.JsonException => false,
        ChineseClip.Model.Checkpoints.CheckpointFormatException or ChineseClip.Model.Checkpoints.CheckpointMismatchException
            or ChineseClip.Model.Checkpoints.UnsafePickleException => false,
        _ => true,
    };

    /// <summary>Sends progress (none: only the checkpoint) with the newest checkpoint of the run ("" = none yet);
    /// <paramref name="patiently"/>: through coordinator restarts, as the end report.</summary>
    async Task ReportProgress(StageAssignment a, TrainProgress? p, (string Path, long Step) checkpoint, bool patiently = false)
    {
        var report = new ProgressReport { RunId = a.RunId, Rank = a.Rank, Checkpoint = checkpoint.Path, CheckpointStep = checkpoint.Step };
        if (p is not null)
        {
            report.Progress = new Progress
            {
                Epoch = p.Epoch, Epochs = p.Epochs, Step = p.Step, Steps = p.Steps, Loss = p.Loss, Lr = p.Lr, SamplesPerSecond = p.SamplesPerSecond,
                DataSeconds = p.DataSeconds, ComputeSeconds = p.ComputeSeconds, AllreduceSeconds = p.AllReduceSeconds, EtaSeconds = p.EtaSeconds,
            };
            if (p.Validation is { } v)
            {
                report.Progress.T2IRecall.AddRange([v.TextToImage.R1, v.TextToImage.R5, v.TextToImage.R10]);
                report.Progress.I2TRecall.AddRange([v.ImageToText.R1, v.ImageToText.R5, v.ImageToText.R10]);
                report.Progress.MeanRecall = v.MeanRecall;
            }
        }
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await coordinator.ReportProgressAsync(report);
                return;
            }
            catch (RpcException e) when (patiently && e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown && attempt < 60)
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
            catch (RpcException e)
            {
                log.LogDebug("Progress report lost ({Status})", e.StatusCode); // the next one carries the news
                return;
            }
        }
    }

    // The end of a run must reach the coordinator (it decides what runs next): retry through coordinator restarts.
    async Task Report(StageEndReport report)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await coordinator.ReportStageEndAsync(report);
                return;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown && attempt < 60)
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
            catch (RpcException e)
            {
                log.LogError("Could not report the end of run {Run}: {Status} {Detail}", report.RunId, e.StatusCode, e.Status.Detail);
                return;
            }
        }
    }

    /// <summary>The trainer's log lines, as log records (so they reach the dashboard).</summary>
    sealed class LogWriter(ILogger log) : StringWriter
    {
        public override void WriteLine(string? value) => log.LogInformation("{Line}", value);
    }
}

/// <summary>The ring's rendezvous through the coordinator: every rank of the run gives its address and waits for all.</summary>
sealed class CoordinatorRendezvous(Coordinator.CoordinatorClient coordinator, string runId, CancellationToken cancel) : IRendezvous
{
    public IReadOnlyList<string> Exchange(int rank, int worldSize, string address, TimeSpan timeout)
    {
        var response = coordinator.Rendezvous(new RendezvousRequest { RunId = runId, Rank = rank, Address = address },
            deadline: DateTime.UtcNow + timeout, cancellationToken: cancel);
        if (response.Addresses.Count != worldSize)
            throw new InvalidOperationException($"run {runId}: the coordinator returned {response.Addresses.Count} addresses for {worldSize} ranks");
        return response.Addresses;
    }
}
