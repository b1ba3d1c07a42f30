// What happens to a running stage whose workers change: a member out of sight too long, a worker that left, or a
// retryable failure re-forms the stage from its newest reported checkpoint on the workers there are (at most
// Coordinator:MaxAttempts times without progress), a final failure fails the schedule, and a worker free while the stage could use it
// re-forms the stage on more workers at its next safe point.
using System.Collections.Concurrent;
using System.Diagnostics;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Extensions;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class StageRecovery(ScheduleStore store, WorkerRegistry workers, RendezvousTable rendezvous, CoordinatorOptions options,
    StageSpans spans, ILogger log, Action wake)
{
    /// <summary>How long a running stage waits for a member that is not connected (say, after a coordinator restart)
    /// before it is re-formed without it.</summary>
    public static readonly TimeSpan MemberGrace = TimeSpan.FromSeconds(30);

    /// <summary>How long a running stage waits for a member that is connected but not in the run: long enough for the
    /// end report of a rank that finished while no coordinator listened (retried every 2 s) to arrive after its rejoin.</summary>
    public static readonly TimeSpan LostRunGrace = TimeSpan.FromSeconds(6);

    // Ranks that reported success, by run; since when a running stage's member has been out of sight; and, for a stage
    // being re-formed, the run whose workers must be free again before the next attempt starts.
    readonly ConcurrentDictionary<string, ConcurrentDictionary<int, bool>> _finished = new();
    readonly ConcurrentDictionary<string, DateTime> _missingSince = new();
    readonly ConcurrentDictionary<string, (string RunId, DateTime Until)> _draining = new();

    public void RankFinished(string runId, int rank) => _finished.GetOrAdd(runId, _ => new())[rank] = true;

    /// <summary>A re-formed stage waits (a little) for the workers of its previous run to be free, so that it starts on
    /// all of them rather than on whoever happens to be free first.</summary>
    public bool Draining(string scheduleId, int index) =>
        _draining.TryGetValue(RunId.StageKey(scheduleId, index), out var drain) && DateTime.UtcNow < drain.Until && workers.In(drain.RunId).Count > 0;

    public async Task CheckMembers(ScheduleStatus schedule, int index)
    {
        var stage = schedule.Stages[index];
        string runId = new RunId(schedule.Id, index, stage.Attempt).ToString();
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
                await Recover(schedule.Id, index, runId, connection is null
                    ? $"worker {stage.Members[rank]} (rank {rank}) did not come back within {MemberGrace.TotalSeconds:F0} s"
                    : $"worker {stage.Members[rank]} (rank {rank}) joined again without the run");
                return;
            }
        }
    }

    /// <summary>Frees workers still marked busy with a run that is over: its stage ended or was re-formed (a later
    /// attempt runs), or the worker's rank already reported success. A worker's end report can reach a restarted
    /// coordinator before its Join, which still names the run; nothing else would ever free it. A stage being
    /// re-formed (Pending) keeps its previous run's workers until they report, as the re-form waits for them.</summary>
    public void ReleaseEndedRuns()
    {
        foreach (var worker in workers.All())
        {
            if (worker.RunId is not { } runId) continue;
            var stage = RunId.TryParse(runId, out var run) && store.Get(run.ScheduleId) is { } schedule
                && run.StageIndex < schedule.Stages.Count ? schedule.Stages[run.StageIndex] : null;
            bool ended = stage is null || stage.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled
                || run.Attempt > stage.Attempt // a run that never began (its start was not recorded)
                || stage.State == RunState.Running && (stage.Attempt != run.Attempt
                    || _finished.TryGetValue(runId, out var done) && done.ContainsKey(stage.Members.IndexOf(worker.Info.Name)));
            if (!ended) continue;
            log.LogInformation("Worker {Name} was still marked busy with run {Run}, which is over: free again", worker.Info.Name, runId);
            worker.RunId = null;
        }
    }

    /// <summary>A worker that is free while a stage runs on fewer workers than it could use (one that came back, or
    /// joined late) brings the stage to its next safe point: the first checkpoint the current attempt reports. The
    /// stage is then re-formed from that checkpoint on the larger set, with the same global batch.</summary>
    public async Task GrowAtSafePoint(ScheduleStatus schedule, int index)
    {
        var stage = schedule.Stages[index];
        var free = workers.Free();
        int could = Placement.GrowTo(schedule.Schedule.Stages[index], stage, free.Count);
        if (could == 0) return;
        await Reform(schedule.Id, index, new RunId(schedule.Id, index, stage.Attempt).ToString(),
            $"{string.Join(", ", free.Select(w => w.Info.Name))} free: growing from {stage.Members.Count} to {could} workers",
            stage.LatestCheckpoint, countsAsFailure: false);
    }

    public async Task OnWorkerLeft(WorkerConnection worker)
    {
        if (worker.RunId is not { } runId) return;
        var run = RunId.Parse(runId);
        var schedule = store.Get(run.ScheduleId);
        if (schedule is null || schedule.Stages[run.StageIndex].State != RunState.Running) return;
        int rank = schedule.Stages[run.StageIndex].Members.IndexOf(worker.Info.Name);
        await Recover(run.ScheduleId, run.StageIndex, runId, $"worker {worker.Info.Name} (rank {rank}) left during the stage");
    }

    public async Task Fail(string id, int index, string runId, string error)
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
        workers.CancelRun(runId);
        spans.EndRun(runId, ActivityStatusCode.Error, error);
        spans.EndSchedule(id, ActivityStatusCode.Error, error);
        log.LogError("Schedule {Schedule} failed: {Error}", id, error);
    }

    /// <summary>Re-forms a stage that lost a worker or a link: the current attempt is stopped, and the stage goes back
    /// to PENDING to resume, on the workers there are, from its newest reported checkpoint (step or epoch), which holds
    /// the weights, AdamW state and the position in the data. Gives up after <see cref="CoordinatorOptions.MaxAttempts"/>
    /// failed attempts that wrote no checkpoint.</summary>
    public async Task Recover(string id, int index, string runId, string why)
    {
        var schedule = store.Get(id);
        if (schedule is null) return;
        var stage = schedule.Stages[index];
        if (GivesUp(stage, options.MaxAttempts))
        {
            await Fail(id, index, runId, $"stage '{stage.Name}': {why}; giving up after {stage.Attempt} attempts");
            return;
        }
        await Reform(id, index, runId, why, stage.LatestCheckpoint, countsAsFailure: true);
    }

    /// <summary>Whether the stage's current attempt wrote a checkpoint: its failure then does not count against
    /// Coordinator:MaxAttempts (found by the long fault series: five faults in one 580-step stage, each after progress,
    /// failed the schedule).</summary>
    internal static bool MadeProgress(StageStatus stage) => stage.LatestCheckpoint.Length > 0 && stage.LatestCheckpointAttempt == stage.Attempt;

    /// <summary>Whether a stage whose current attempt just failed is given up: it wrote no checkpoint, and the attempts
    /// that failed without progress (not counting re-forms that grew it) reached <paramref name="maxAttempts"/>.</summary>
    internal static bool GivesUp(StageStatus stage, int maxAttempts) =>
        !MadeProgress(stage) && stage.Attempt - stage.Grown - stage.Forgiven >= maxAttempts;

    /// <summary>Stops a stage's run and puts the stage back to PENDING, to resume from <paramref name="checkpoint"/>
    /// ("" = where the current attempt started) on the workers free at the next scheduling pass.</summary>
    async Task Reform(string id, int index, string runId, string why, string checkpoint, bool countsAsFailure)
    {
        var stage = store.Get(id)?.Stages[index];
        if (stage is null) return;
        rendezvous.Close(runId, why);
        var updated = await store.UpdateAsync(id, s =>
        {
            var st = s.Stages[index];
            if (st.State != RunState.Running || new RunId(id, index, st.Attempt).ToString() != runId) return false;
            st.State = RunState.Pending;
            st.Recoveries++;
            if (!countsAsFailure) st.Grown++;
            else if (MadeProgress(st)) st.Forgiven++;
            st.LastRecovery = why;
            if (checkpoint.Length > 0) st.ResumedFrom = checkpoint;
            return true;
        });
        if (updated is null) return;
        _draining[RunId.Parse(runId).Stage] = (runId, DateTime.UtcNow + MemberGrace);
        workers.CancelRun(runId);
        spans.EndRun(runId, countsAsFailure ? ActivityStatusCode.Error : ActivityStatusCode.Ok, why);
        log.LogWarning("Schedule {Schedule}: stage '{Stage}' re-formed after run {Run} ({Why}); resuming from {Checkpoint}", id, stage.Name, runId, why,
            checkpoint.Length > 0 ? checkpoint : "its initial checkpoint (no checkpoint written yet)");
        wake();
    }
}
