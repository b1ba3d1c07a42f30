// Runs schedules: starts each schedule's next stage on free workers (ranks in worker-name order), decides what it
// starts from (lineage), follows its progress, and moves on when rank 0 reports the stage done. Stage state lives in
// the ScheduleStore, so a restarted coordinator picks up where it was: workers rejoin saying which run they are in.
// Traces: a span per schedule (from submission to its end), a span per stage run as its child (parented through the
// schedule's stored traceparent, so also after a restart), and each run's traceparent goes to its workers.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Extensions;
using Microsoft.Extensions.Options;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class StageRunner(ScheduleStore store, WorkerRegistry workers, RendezvousTable rendezvous, IOptions<CoordinatorOptions> options,
    IHostApplicationLifetime lifetime, ILogger<StageRunner> log) : BackgroundService
{
    readonly SemaphoreSlim _wake = new(0);
    // Open spans: stage runs by run id, schedules by schedule id. A span not ended here (the coordinator was killed) is
    // not exported; stages started later still name it as their parent, from the schedule's stored traceparent.
    readonly ConcurrentDictionary<string, Activity> _spans = new();
    readonly ConcurrentDictionary<string, Activity> _scheduleSpans = new();
    // Ranks that reported success, by run; and since when a running stage's member has been out of sight.
    readonly ConcurrentDictionary<string, ConcurrentDictionary<int, bool>> _finished = new();
    readonly ConcurrentDictionary<string, DateTime> _missingSince = new();
    // When each run started (a checkpoint newer than that is a safe point to re-form at), and, for a stage being
    // re-formed, the run whose workers must be free again before the next attempt starts.
    readonly ConcurrentDictionary<string, DateTime> _runStarted = new();
    readonly ConcurrentDictionary<string, (string RunId, DateTime Until)> _draining = new();

    /// <summary>How long a running stage waits for a member that is not connected (say, after a coordinator restart)
    /// before it is re-formed without it.</summary>
    public static readonly TimeSpan MemberGrace = TimeSpan.FromSeconds(30);

    /// <summary>How long a running stage waits for a member that is connected but not in the run: long enough for the
    /// end report of a rank that finished while no coordinator listened (retried every 2 s) to arrive after its rejoin.</summary>
    public static readonly TimeSpan LostRunGrace = TimeSpan.FromSeconds(6);

    public void Wake() => _wake.Release();

    /// <summary>Stores a new schedule with a span of its own (a child of the submitting call's span) and wakes the
    /// scheduling loop.</summary>
    public async Task<ScheduleStatus> SubmitAsync(Schedule schedule)
    {
        string id = ScheduleStore.NewId();
        var span = CoordinatorTelemetry.StartLongSpan($"schedule {id}");
        span?.SetTag("cnclip.schedule", id);
        span?.SetTag("cnclip.schedule.name", schedule.Name);
        span?.SetTag("cnclip.stages", schedule.Stages.Count);
        ScheduleStatus status;
        try
        {
            status = await store.AddAsync(id, schedule, span?.Id ?? "");
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            span?.Dispose();
            throw;
        }
        if (span is not null) _scheduleSpans[id] = span;
        Wake();
        return status;
    }

    static bool IsActive(RunState s) => s is RunState.Pending or RunState.Running;

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        while (!store.Loaded)
        {
            try
            {
                await store.LoadAsync();
            }
            catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
            {
                log.LogWarning("Redis not reachable yet ({Message}); retrying", e.Message);
                await Task.Delay(TimeSpan.FromSeconds(2), stop);
            }
        }
        workers.Joined += _ => Wake();
        workers.Left += w => _ = OnWorkerLeft(w);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Tick();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogError(e, "Scheduling pass failed");
            }
            try { await _wake.WaitAsync(TimeSpan.FromSeconds(2), stop); } catch (OperationCanceledException) { }
        }
    }

    async Task Tick()
    {
        ReleaseEndedRuns();
        foreach (var schedule in store.All().Where(s => IsActive(s.State)))
        {
            int index = schedule.Stages.ToList().FindIndex(st => st.State != RunState.Succeeded);
            if (index < 0) continue;
            if (schedule.Stages[index].State == RunState.Running)
            {
                await CheckMembers(schedule, index);
                await GrowAtSafePoint(schedule, index);
                continue;
            }
            if (schedule.Stages[index].State != RunState.Pending) continue;
            // A re-formed stage waits (a little) for the workers of its previous run to be free, so that it starts on
            // all of them rather than on whoever happens to be free first.
            if (_draining.TryGetValue($"{schedule.Id}/{index}", out var drain) && DateTime.UtcNow < drain.Until && workers.In(drain.RunId).Count > 0) continue;
            var free = workers.Free();
            int need = WorkersFor(schedule.Schedule.Stages[index], schedule.Stages[index], free.Count);
            if (need == 0) continue;
            await StartStage(schedule, index, free.Take(need).ToList());
        }
    }

    /// <summary>Frees workers still marked busy with a run that is over: its stage ended or was re-formed (a later
    /// attempt runs), or the worker's rank already reported success. A worker's end report can reach a restarted
    /// coordinator before its Join, which still names the run; nothing else would ever free it. A stage being
    /// re-formed (Pending) keeps its previous run's workers until they report, as the re-form waits for them.</summary>
    void ReleaseEndedRuns()
    {
        foreach (var worker in workers.All())
        {
            if (worker.RunId is not { } runId) continue;
            var parts = runId.Split('/');
            var stage = parts.Length == 3 && int.TryParse(parts[1], out int index) && store.Get(parts[0]) is { } schedule
                && index >= 0 && index < schedule.Stages.Count ? schedule.Stages[index] : null;
            bool current = stage is not null && $"{parts[0]}/{parts[1]}/{stage.Attempt}" == runId;
            bool ended = stage is null || stage.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled
                || stage.State == RunState.Running && (!current || _finished.TryGetValue(runId, out var done) && done.ContainsKey(stage.Members.IndexOf(worker.Info.Name)));
            if (!ended) continue;
            log.LogInformation("Worker {Name} was still marked busy with run {Run}, which is over: free again", worker.Info.Name, runId);
            worker.RunId = null;
        }
    }

    const int DefaultBatchSize = 128; // the official per-GPU default

    static int PerWorkerBatch(Stage definition) =>
        definition.Hyperparameters.TryGetValue("batch_size", out string? text) && int.TryParse(text, out int b) ? b : DefaultBatchSize;

    /// <summary>How many of the free workers the stage takes now (0 = wait). A first start takes what the stage asks
    /// for; an attempt after a recovery keeps the global batch, so it needs a worker count that divides it.</summary>
    static int WorkersFor(Stage definition, StageStatus stage, int free)
    {
        int cap = definition.Workers > 0 ? definition.Workers : free;
        if (stage.GlobalBatch == 0) return definition.Workers > 0 && free < definition.Workers ? 0 : cap;
        for (int w = Math.Min(cap, free); w >= 1; w--)
            if (stage.GlobalBatch % w == 0) return w;
        return 0;
    }

    async Task CheckMembers(ScheduleStatus schedule, int index)
    {
        var stage = schedule.Stages[index];
        string runId = $"{schedule.Id}/{index}/{stage.Attempt}";
        var finished = _finished.GetValueOrDefault(runId);
        for (int rank = 0; rank < stage.Members.Count; rank++)
        {
            string key = $"{runId}#{stage.Members[rank]}";
            var connection = workers.Get(stage.Members[rank]);
            if (connection?.RunId == runId || finished?.ContainsKey(rank) == true)
            {
                _missingSince.TryRemove(key, out _);
                continue;
            }
            // A member connected but not in the run (restarted, say with the whole cluster) will not return to it; one
            // that is not connected may (a coordinator restart), so it gets longer.
            var grace = connection is null ? MemberGrace : LostRunGrace;
            var since = _missingSince.GetOrAdd(key, DateTime.UtcNow);
            if (DateTime.UtcNow - since > grace)
            {
                _missingSince.TryRemove(key, out _);
                await RecoverStage(schedule.Id, index, runId, connection is null
                    ? $"worker {stage.Members[rank]} (rank {rank}) did not come back within {MemberGrace.TotalSeconds:F0} s"
                    : $"worker {stage.Members[rank]} (rank {rank}) joined again without the run");
                return;
            }
        }
    }

    /// <summary>A worker that is free while a stage runs on fewer workers than it could use (one that came back, or
    /// joined late) brings the stage to its next safe point: the first checkpoint written after the run started. The
    /// stage is then re-formed from that checkpoint on the larger set, with the same global batch.</summary>
    async Task GrowAtSafePoint(ScheduleStatus schedule, int index)
    {
        var stage = schedule.Stages[index];
        string runId = $"{schedule.Id}/{index}/{stage.Attempt}";
        var free = workers.Free();
        if (free.Count == 0 || !_runStarted.TryGetValue(runId, out var started)) return;
        int could = WorkersFor(schedule.Schedule.Stages[index], stage, stage.Members.Count + free.Count);
        if (could <= stage.Members.Count) return;
        string? checkpoint = NewestCheckpoint(stage.RunDir);
        if (checkpoint is null || File.GetLastWriteTimeUtc(checkpoint) <= started) return;
        if (stage.Progress is { } p && p.Steps > 0 && p.Step >= p.Steps) return; // finishing anyway
        await Reform(schedule.Id, index, runId, $"{string.Join(", ", free.Select(w => w.Info.Name))} free: growing from {stage.Members.Count} to {could} workers",
            checkpoint, countsAsFailure: false);
    }

    async Task StartStage(ScheduleStatus schedule, int index, IReadOnlyList<WorkerConnection> members)
    {
        var definition = schedule.Schedule.Stages[index];
        var status = schedule.Stages[index];
        int attempt = status.Attempt + 1;
        string runId = $"{schedule.Id}/{index}/{attempt}";
        int globalBatch = status.GlobalBatch > 0 ? status.GlobalBatch : PerWorkerBatch(definition) * members.Count;
        var (init, from) = status.Attempt > 0 ? (status.InitCheckpoint, status.InitFrom) : InitFor(schedule, index);
        string logs = Path.GetFullPath(Path.Combine(options.Value.RunsDirectory, schedule.Id));
        string name = $"{index}-{definition.Name}";

        var train = new JsonObject
        {
            ["train_data"] = definition.TrainData, ["arch"] = definition.Arch, ["vocab"] = definition.Vocab,
            ["logs"] = logs, ["name"] = name,
        };
        if (definition.ValData.Length > 0) train["val_data"] = definition.ValData;
        foreach (var (key, value) in definition.Hyperparameters)
            if (TrainArguments.TryToJson(key, value, out string json, out _)) train[key] = JsonNode.Parse(json);
        train["batch_size"] = globalBatch / members.Count;
        if (status.ResumedFrom.Length > 0)
        {
            // After a recovery: the exact position (step, optimizer, schedule) of the newest checkpoint of this stage.
            train["resume"] = status.ResumedFrom;
            train["reset_data_offset"] = false;
            train["reset_optimizer"] = false;
        }
        else if (init.Length > 0)
        {
            // As the official fine-tuning scripts start from a released checkpoint: weights only, at epoch 0.
            train["resume"] = init;
            train["reset_data_offset"] = true;
            train["reset_optimizer"] = true;
        }

        foreach (var m in members) m.RunId = runId;
        if (members.Count > 1) rendezvous.Open(runId, members.Count);
        var updated = await store.UpdateAsync(schedule.Id, s =>
        {
            if (!IsActive(s.State)) return false;
            var st = s.Stages[index];
            st.State = RunState.Running;
            st.Attempt = attempt;
            st.GlobalBatch = globalBatch;
            st.InitCheckpoint = init;
            st.InitFrom = from;
            st.RunDir = Path.Combine(logs, name);
            st.Members.Clear();
            st.Members.AddRange(members.Select(m => m.Info.Name));
            st.Error = "";
            s.State = RunState.Running;
            return true;
        });
        if (updated is null)
        {
            foreach (var m in members) m.RunId = null;
            return;
        }
        var span = CoordinatorTelemetry.StartLongSpan($"stage {definition.Name}", CoordinatorTelemetry.ParentFrom(schedule.Traceparent));
        span?.SetTag("cnclip.schedule", schedule.Id);
        span?.SetTag("cnclip.stage", definition.Name);
        span?.SetTag("cnclip.run", runId);
        span?.SetTag("cnclip.world_size", members.Count);
        span?.SetTag("cnclip.init_from", from);
        if (span is not null) _spans[runId] = span;
        _runStarted[runId] = DateTime.UtcNow;
        log.LogInformation("Schedule {Schedule}: stage {Index} '{Stage}' starts on {Workers} from {From}", schedule.Id, index, definition.Name,
            string.Join(", ", members.Select(m => m.Info.Name)), from);
        string optionsJson = train.ToJsonString();
        for (int rank = 0; rank < members.Count; rank++)
        {
            members[rank].Commands.Writer.TryWrite(new WorkerCommand
            {
                RunStage = new StageAssignment
                {
                    RunId = runId, Rank = rank, WorldSize = members.Count, TrainOptionsJson = optionsJson,
                    ScheduleId = schedule.Id, StageIndex = index, Traceparent = span?.Id ?? "",
                },
            });
        }
    }

    static (string Checkpoint, string From) InitFor(ScheduleStatus schedule, int index)
    {
        var definition = schedule.Schedule.Stages[index];
        var init = definition.Init == StageInit.InitDefault ? (index == 0 ? StageInit.InitScratch : StageInit.InitBestOfPrevious) : definition.Init;
        if (init == StageInit.InitScratch) return ("", "random initialisation");
        if (init == StageInit.InitPretrained) return (Path.GetFullPath(definition.Pretrained), "pretrained checkpoint");
        var previous = schedule.Stages[index - 1];
        if (init == StageInit.InitBestOfPrevious && previous.BestCheckpoint.Length > 0)
            return (previous.BestCheckpoint, $"best checkpoint of stage '{previous.Name}'");
        return (previous.LastCheckpoint, $"last checkpoint of stage '{previous.Name}'");
    }

    static (string ScheduleId, int Index) ParseRun(string runId)
    {
        var parts = runId.Split('/');
        if (parts.Length != 3 || !int.TryParse(parts[1], out int index)) throw new ArgumentException($"'{runId}' is not a run id");
        return (parts[0], index);
    }

    public async Task ProgressAsync(ProgressReport report)
    {
        var (id, index) = ParseRun(report.RunId);
        var p = report.Progress;
        CoordinatorTelemetry.Loss.Record(p.Loss);
        CoordinatorTelemetry.LearningRate.Record(p.Lr);
        CoordinatorTelemetry.SamplesPerSecond.Record(p.SamplesPerSecond);
        CoordinatorTelemetry.DataSeconds.Record(p.DataSeconds);
        CoordinatorTelemetry.ComputeSeconds.Record(p.ComputeSeconds);
        CoordinatorTelemetry.AllReduceSeconds.Record(p.AllreduceSeconds);
        if (p.T2IRecall.Count > 0) CoordinatorTelemetry.MeanRecall.Record(p.MeanRecall);
        await store.UpdateAsync(id, s =>
        {
            var st = s.Stages[index];
            if (st.State != RunState.Running || $"{id}/{index}/{st.Attempt}" != report.RunId) return false;
            // Keep the last validation when a plain step report arrives.
            var merged = p.Clone();
            if (merged.T2IRecall.Count == 0 && st.Progress is { } old)
            {
                merged.T2IRecall.AddRange(old.T2IRecall);
                merged.I2TRecall.AddRange(old.I2TRecall);
                merged.MeanRecall = old.MeanRecall;
            }
            st.Progress = merged;
            return true;
        });
    }

    public async Task StageEndedAsync(StageEndReport report)
    {
        var (id, index) = ParseRun(report.RunId);
        var schedule = store.Get(id) ?? throw new KeyNotFoundException($"schedule '{id}' not found");
        var stage = schedule.Stages[index];
        if (report.Rank >= 0 && report.Rank < stage.Members.Count && workers.Get(stage.Members[report.Rank]) is { } w && w.RunId == report.RunId)
            w.RunId = null;
        bool current = stage.State == RunState.Running && $"{id}/{index}/{stage.Attempt}" == report.RunId;
        if (!current) return;
        if (report.Succeeded) _finished.GetOrAdd(report.RunId, _ => new())[report.Rank] = true;
        if (!report.Succeeded)
        {
            string who = report.Rank < stage.Members.Count ? stage.Members[report.Rank] : "?";
            string error = $"stage '{stage.Name}' rank {report.Rank} ({who}): {report.Error}";
            if (report.Retryable) await RecoverStage(id, index, report.RunId, error);
            else await FailStage(id, index, report.RunId, error);
        }
        else if (report.Rank == 0)
        {
            var updated = await store.UpdateAsync(id, s =>
            {
                var st = s.Stages[index];
                st.State = RunState.Succeeded;
                st.BestCheckpoint = report.BestCheckpoint;
                st.LastCheckpoint = report.LastCheckpoint;
                if (s.Stages.All(x => x.State == RunState.Succeeded)) s.State = RunState.Succeeded;
                return true;
            });
            CoordinatorTelemetry.StagesDone.Add(1);
            EndSpan(report.RunId, ActivityStatusCode.Ok, null);
            if (updated?.State == RunState.Succeeded) EndScheduleSpan(id, ActivityStatusCode.Ok, null);
            log.LogInformation("Schedule {Schedule}: stage {Index} '{Stage}' done; best checkpoint {Best}", id, index, stage.Name, report.BestCheckpoint);
        }
        Wake();
    }

    async Task FailStage(string id, int index, string runId, string error)
    {
        rendezvous.Close(runId, error);
        await store.UpdateAsync(id, s =>
        {
            s.Stages[index].State = RunState.Failed;
            s.Stages[index].Error = error;
            s.State = RunState.Failed;
            s.Error = error;
            return true;
        });
        foreach (var w in workers.In(runId)) w.Commands.Writer.TryWrite(new WorkerCommand { CancelStage = new CancelStage { RunId = runId } });
        EndSpan(runId, ActivityStatusCode.Error, error);
        EndScheduleSpan(id, ActivityStatusCode.Error, error);
        log.LogError("Schedule {Schedule} failed: {Error}", id, error);
    }

    /// <summary>Re-forms a stage that lost a worker or a link: the current attempt is stopped, and the stage goes back
    /// to PENDING to resume, on the workers there are, from its newest checkpoint (step or epoch), which holds the
    /// weights, AdamW state and the position in the data. Gives up after <see cref="CoordinatorOptions.MaxAttempts"/>.</summary>
    async Task RecoverStage(string id, int index, string runId, string why)
    {
        var schedule = store.Get(id);
        if (schedule is null) return;
        var stage = schedule.Stages[index];
        if (stage.Attempt - stage.Grown >= options.Value.MaxAttempts)
        {
            await FailStage(id, index, runId, $"stage '{stage.Name}': {why}; giving up after {stage.Attempt} attempts");
            return;
        }
        await Reform(id, index, runId, why, NewestCheckpoint(stage.RunDir), countsAsFailure: true);
    }

    /// <summary>Stops a stage's run and puts the stage back to PENDING, to resume from <paramref name="checkpoint"/>
    /// (weights, AdamW state, position in the data) on the workers free at the next scheduling pass.</summary>
    async Task Reform(string id, int index, string runId, string why, string? checkpoint, bool countsAsFailure)
    {
        var stage = store.Get(id)?.Stages[index];
        if (stage is null) return;
        rendezvous.Close(runId, why);
        var updated = await store.UpdateAsync(id, s =>
        {
            var st = s.Stages[index];
            if (st.State != RunState.Running || $"{id}/{index}/{st.Attempt}" != runId) return false;
            st.State = RunState.Pending;
            st.Recoveries++;
            if (!countsAsFailure) st.Grown++;
            st.LastRecovery = why;
            if (checkpoint is not null) st.ResumedFrom = checkpoint;
            return true;
        });
        if (updated is null) return;
        _draining[$"{id}/{index}"] = (runId, DateTime.UtcNow + MemberGrace);
        foreach (var w in workers.In(runId)) w.Commands.Writer.TryWrite(new WorkerCommand { CancelStage = new CancelStage { RunId = runId } });
        EndSpan(runId, countsAsFailure ? ActivityStatusCode.Error : ActivityStatusCode.Ok, why);
        log.LogWarning("Schedule {Schedule}: stage '{Stage}' re-formed after run {Run} ({Why}); resuming from {Checkpoint}", id, stage.Name, runId, why,
            checkpoint ?? "its initial checkpoint (no checkpoint written yet)");
        Wake();
    }

    // Checkpoints are published by rename once complete, in training order: the newest file is the furthest position.
    static string? NewestCheckpoint(string runDir)
    {
        string dir = Path.Combine(runDir, "checkpoints");
        if (!Directory.Exists(dir)) return null;
        return new DirectoryInfo(dir).EnumerateFiles("epoch*.pt")
            .OrderByDescending(f => f.LastWriteTimeUtc).ThenByDescending(f => f.Name == "epoch_latest.pt")
            .Select(f => f.FullName).FirstOrDefault();
    }

    async Task OnWorkerLeft(WorkerConnection worker)
    {
        // Streams also end when this coordinator stops: the workers are fine and will rejoin the next one.
        if (worker.RunId is not { } runId || lifetime.ApplicationStopping.IsCancellationRequested) return;
        var (id, index) = ParseRun(runId);
        var schedule = store.Get(id);
        if (schedule is null || schedule.Stages[index].State != RunState.Running) return;
        int rank = schedule.Stages[index].Members.IndexOf(worker.Info.Name);
        await RecoverStage(id, index, runId, $"worker {worker.Info.Name} (rank {rank}) left during the stage");
    }

    public async Task<ScheduleStatus?> CancelAsync(string id)
    {
        string? runId = null;
        bool cancelled = false;
        var updated = await store.UpdateAsync(id, s =>
        {
            if (!IsActive(s.State)) return true; // already over: answer with the final state
            s.State = RunState.Cancelled;
            cancelled = true;
            for (int i = 0; i < s.Stages.Count; i++)
            {
                var st = s.Stages[i];
                if (st.State == RunState.Running) runId = $"{id}/{i}/{st.Attempt}";
                if (IsActive(st.State)) st.State = RunState.Cancelled;
            }
            return true;
        });
        if (runId is not null)
        {
            rendezvous.Close(runId, "the schedule was cancelled");
            foreach (var w in workers.In(runId)) w.Commands.Writer.TryWrite(new WorkerCommand { CancelStage = new CancelStage { RunId = runId } });
            EndSpan(runId, ActivityStatusCode.Error, "cancelled");
        }
        if (cancelled) EndScheduleSpan(id, ActivityStatusCode.Error, "cancelled");
        return updated;
    }

    void EndSpan(string runId, ActivityStatusCode status, string? description) => End(_spans, runId, status, description);

    void EndScheduleSpan(string id, ActivityStatusCode status, string? description) => End(_scheduleSpans, id, status, description);

    static void End(ConcurrentDictionary<string, Activity> spans, string key, ActivityStatusCode status, string? description)
    {
        if (!spans.TryRemove(key, out var span)) return;
        span.SetStatus(status, description);
        span.Dispose();
    }

    /// <summary>A coordinator that stops ends its open spans, so that they are exported: the schedules and runs go on
    /// (the workers keep training, the next coordinator continues the schedules and parents their next stages to the
    /// same schedule spans), which the tag says.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        foreach (var spans in new[] { _spans, _scheduleSpans })
            foreach (var key in spans.Keys)
                if (spans.TryRemove(key, out var span))
                {
                    span.SetTag("cnclip.coordinator_stopped", true);
                    span.Dispose();
                }
    }
}
