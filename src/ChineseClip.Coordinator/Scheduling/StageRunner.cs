// Runs schedules: starts each schedule's next stage on free workers (ranks in worker-name order), follows its
// progress and the checkpoints its rank 0 reports, and moves on when rank 0 reports the stage done. Stage state lives
// in the ScheduleStore, so a restarted coordinator picks up where it was: workers rejoin saying which run they are in.
// The rules are apart: Placement (how many workers), StageOptions (what an attempt trains, from where),
// StageRecovery (lost and regained workers), StageSpans (the schedule > stage traces).
using System.Diagnostics;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Extensions;
using Microsoft.Extensions.Options;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class StageRunner : BackgroundService
{
    readonly ScheduleStore _store;
    readonly WorkerRegistry _workers;
    readonly RendezvousTable _rendezvous;
    readonly CoordinatorOptions _options;
    readonly IHostApplicationLifetime _lifetime;
    readonly ILogger<StageRunner> _log;
    readonly SemaphoreSlim _wake = new(0);
    readonly StageSpans _spans = new();
    readonly StageRecovery _recovery;

    public StageRunner(ScheduleStore store, WorkerRegistry workers, RendezvousTable rendezvous, IOptions<CoordinatorOptions> options,
        IHostApplicationLifetime lifetime, ILogger<StageRunner> log)
    {
        (_store, _workers, _rendezvous, _options, _lifetime, _log) = (store, workers, rendezvous, options.Value, lifetime, log);
        _recovery = new StageRecovery(store, workers, rendezvous, _options, _spans, log, Wake);
    }

    public void Wake() => _wake.Release();

    /// <summary>Stores a new schedule with a span of its own (a child of the submitting call's span) and wakes the
    /// scheduling loop.</summary>
    public async Task<ScheduleStatus> SubmitAsync(Schedule schedule)
    {
        string id = ScheduleStore.NewId();
        var span = StageSpans.StartSchedule(id, schedule);
        ScheduleStatus status;
        try
        {
            status = await _store.AddAsync(id, schedule, span?.Id ?? "");
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            span?.Dispose();
            throw;
        }
        _spans.KeepSchedule(id, span);
        Wake();
        return status;
    }

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        while (!_store.Loaded)
        {
            try
            {
                await _store.LoadAsync();
            }
            catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
            {
                _log.LogWarning("Redis not reachable yet ({Message}); retrying", e.Message);
                await Task.Delay(TimeSpan.FromSeconds(2), stop);
            }
        }
        _workers.Joined += _ => Wake();
        // Streams also end when this coordinator stops: the workers are fine and will rejoin the next one.
        _workers.Left += w => _ = _lifetime.ApplicationStopping.IsCancellationRequested ? Task.CompletedTask : _recovery.OnWorkerLeft(w);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Tick();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _log.LogError(e, "Scheduling pass failed");
            }
            try { await _wake.WaitAsync(TimeSpan.FromSeconds(2), stop); } catch (OperationCanceledException) { }
        }
    }

    async Task Tick()
    {
        _recovery.ReleaseEndedRuns();
        foreach (var schedule in _store.All().Where(s => Placement.IsActive(s.State)))
        {
            int index = Placement.CurrentStage(schedule);
            if (index < 0) continue;
            if (schedule.Stages[index].State == RunState.Running)
            {
                await _recovery.CheckMembers(schedule, index);
                await _recovery.GrowAtSafePoint(schedule, index);
                continue;
            }
            if (schedule.Stages[index].State != RunState.Pending || _recovery.Draining(schedule.Id, index)) continue;
            var free = _workers.Free();
            int need = Placement.WorkersFor(schedule.Schedule.Stages[index], schedule.Stages[index], free.Count);
            if (need == 0) continue;
            await StartStage(schedule, index, free.Take(need).ToList());
        }
    }

    async Task StartStage(ScheduleStatus schedule, int index, IReadOnlyList<WorkerConnection> members)
    {
        var definition = schedule.Schedule.Stages[index];
        var run = new RunId(schedule.Id, index, schedule.Stages[index].Attempt + 1);
        string runId = run.ToString();
        var plan = StageOptions.Plan(schedule, index, members.Count, _options.RunsDirectory);

        foreach (var m in members) m.RunId = runId;
        if (members.Count > 1) _rendezvous.Open(runId, members.Count);
        ScheduleStatus? updated;
        try
        {
            updated = await _store.UpdateAsync(schedule.Id, s => MarkStarted(s, index, run, plan, members));
        }
        catch
        {
            // Redis unreachable: the stage did not start, so its workers are free again for the next pass, which tries
            // again (left marked busy with a run that never began, nothing would ever free them: a fault series hung so,
            // a Garnet restart during a re-form).
            foreach (var m in members) m.RunId = null;
            _rendezvous.Close(runId, "the stage did not start");
            throw;
        }
        if (updated is null)
        {
            foreach (var m in members) m.RunId = null;
            return;
        }
        var span = _spans.StartRun(schedule, run, members.Count, plan.InitFrom);
        _log.LogInformation("Schedule {Schedule}: stage {Index} '{Stage}' starts on {Workers} from {From}", schedule.Id, index, definition.Name,
            string.Join(", ", members.Select(m => m.Info.Name)), plan.InitFrom);
        string optionsJson = plan.Options.ToJsonString();
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

    static bool MarkStarted(ScheduleStatus s, int index, RunId run, StagePlan plan, IReadOnlyList<WorkerConnection> members)
    {
        if (!Placement.IsActive(s.State)) return false;
        var st = s.Stages[index];
        st.State = RunState.Running;
        st.Attempt = run.Attempt;
        st.GlobalBatch = plan.GlobalBatch;
        st.InitCheckpoint = plan.Init;
        st.InitFrom = plan.InitFrom;
        st.RunDir = plan.RunDir;
        st.Members.Clear();
        st.Members.AddRange(members.Select(m => m.Info.Name));
        st.Error = "";
        s.State = RunState.Running;
        return true;
    }

    /// <summary>A rank's progress (kept with the last validation when a plain step report arrives) and the newest
    /// checkpoint its run has written, where a recovery of the stage resumes.</summary>
    public async Task ProgressAsync(ProgressReport report)
    {
        var run = RunId.Parse(report.RunId);
        var p = report.Progress;
        if (p is not null) CoordinatorTelemetry.Record(p);
        await _store.UpdateAsync(run.ScheduleId, s =>
        {
            var st = s.Stages[run.StageIndex];
            if (st.State != RunState.Running || st.Attempt != run.Attempt) return false;
            bool changed = false;
            if (p is not null)
            {
                var merged = p.Clone();
                if (merged.T2IRecall.Count == 0 && st.Progress is { } old)
                {
                    merged.T2IRecall.AddRange(old.T2IRecall);
                    merged.I2TRecall.AddRange(old.I2TRecall);
                    merged.MeanRecall = old.MeanRecall;
                }
                st.Progress = merged;
                changed = true;
            }
            // Reports may arrive out of order, and repeat the newest checkpoint: the one furthest into training wins.
            if (report.Checkpoint.Length > 0 && (st.LatestCheckpoint.Length == 0 || report.CheckpointStep > st.LatestCheckpointStep))
            {
                st.LatestCheckpoint = report.Checkpoint;
                st.LatestCheckpointStep = report.CheckpointStep;
                st.LatestCheckpointAttempt = run.Attempt;
                changed = true;
            }
            return changed;
        });
    }

    public async Task StageEndedAsync(StageEndReport report)
    {
        var run = RunId.Parse(report.RunId);
        var (id, index) = (run.ScheduleId, run.StageIndex);
        var schedule = _store.Get(id) ?? throw new KeyNotFoundException($"schedule '{id}' not found");
        var stage = schedule.Stages[index];
        if (report.Rank >= 0 && report.Rank < stage.Members.Count && _workers.Get(stage.Members[report.Rank]) is { } w && w.RunId == report.RunId)
            w.RunId = null;
        bool current = stage.State == RunState.Running && stage.Attempt == run.Attempt;
        if (!current) return;
        if (report.Succeeded) _recovery.RankFinished(report.RunId, report.Rank);
        if (!report.Succeeded)
        {
            string who = report.Rank < stage.Members.Count ? stage.Members[report.Rank] : "?";
            string error = $"stage '{stage.Name}' rank {report.Rank} ({who}): {report.Error}";
            if (report.Retryable) await _recovery.Recover(id, index, report.RunId, error);
            else await _recovery.Fail(id, index, report.RunId, error);
        }
        else if (report.Rank == 0)
        {
            var updated = await _store.UpdateAsync(id, s =>
            {
                var st = s.Stages[index];
                st.State = RunState.Succeeded;
                st.BestCheckpoint = report.BestCheckpoint;
                st.LastCheckpoint = report.LastCheckpoint;
                if (s.Stages.All(x => x.State == RunState.Succeeded)) s.State = RunState.Succeeded;
                return true;
            });
            CoordinatorTelemetry.StagesDone.Add(1);
            _spans.EndRun(report.RunId, ActivityStatusCode.Ok, null);
            if (updated?.State == RunState.Succeeded) _spans.EndSchedule(id, ActivityStatusCode.Ok, null);
            _log.LogInformation("Schedule {Schedule}: stage {Index} '{Stage}' done; best checkpoint {Best}", id, index, stage.Name, report.BestCheckpoint);
        }
        Wake();
    }

    public async Task<ScheduleStatus?> CancelAsync(string id)
    {
        string? runId = null;
        bool cancelled = false;
        var updated = await _store.UpdateAsync(id, s =>
        {
            if (!Placement.IsActive(s.State)) return true; // already over: answer with the final state
            s.State = RunState.Cancelled;
            cancelled = true;
            for (int i = 0; i < s.Stages.Count; i++)
            {
                var st = s.Stages[i];
                if (st.State == RunState.Running) runId = new RunId(id, i, st.Attempt).ToString();
                if (Placement.IsActive(st.State)) st.State = RunState.Cancelled;
            }
            return true;
        });
        if (runId is not null)
        {
            _rendezvous.Close(runId, "the schedule was cancelled");
            _workers.CancelRun(runId);
            _spans.EndRun(runId, ActivityStatusCode.Error, "cancelled");
        }
        if (cancelled) _spans.EndSchedule(id, ActivityStatusCode.Error, "cancelled");
        return updated;
    }

    /// <summary>A coordinator that stops ends its open spans, so that they are exported (see <see cref="StageSpans.EndAllAtStop"/>).</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        _spans.EndAllAtStop();
    }
}
