// Runs schedules: starts each schedule's next stage on free workers (ranks in worker-name order), decides what it
// starts from (lineage), follows its progress, and moves on when rank 0 reports the stage done. Stage state lives in
// the ScheduleStore, so a restarted coordinator picks up where it was: workers rejoin saying which run they are in.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Extensions;
using Microsoft.Extensions.Options;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class StageRunner(ScheduleStore store, WorkerRegistry workers, RendezvousTable rendezvous, IOptions<CoordinatorOptions> options,
    ILogger<StageRunner> log) : BackgroundService
{
    readonly SemaphoreSlim _wake = new(0);
    readonly ConcurrentDictionary<string, Activity> _spans = new();

    public void Wake() => _wake.Release();

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
        foreach (var schedule in store.All().Where(s => IsActive(s.State)))
        {
            int index = schedule.Stages.ToList().FindIndex(st => st.State != RunState.Succeeded);
            if (index < 0 || schedule.Stages[index].State != RunState.Pending) continue;
            var definition = schedule.Schedule.Stages[index];
            var free = workers.Free();
            int need = definition.Workers > 0 ? definition.Workers : free.Count;
            if (need == 0 || free.Count < need) continue;
            await StartStage(schedule, index, free.Take(need).ToList());
        }
    }

    async Task StartStage(ScheduleStatus schedule, int index, IReadOnlyList<WorkerConnection> members)
    {
        var definition = schedule.Schedule.Stages[index];
        int attempt = schedule.Stages[index].Attempt + 1;
        string runId = $"{schedule.Id}/{index}/{attempt}";
        var (init, from) = InitFor(schedule, index);
        string logs = Path.GetFullPath(Path.Combine(options.Value.RunsDirectory, schedule.Id));
        string name = $"{index}-{definition.Name}";

        var train = new JsonObject
        {
            ["train_data"] = definition.TrainData, ["arch"] = definition.Arch, ["vocab"] = definition.Vocab,
            ["logs"] = logs, ["name"] = name,
        };
        if (definition.ValData.Length > 0) train["val_data"] = definition.ValData;
        if (init.Length > 0)
        {
            // As the official fine-tuning scripts start from a released checkpoint: weights only, at epoch 0.
            train["resume"] = init;
            train["reset_data_offset"] = true;
            train["reset_optimizer"] = true;
        }
        foreach (var (key, value) in definition.Hyperparameters)
            if (TrainArguments.TryToJson(key, value, out string json, out _)) train[key] = JsonNode.Parse(json);

        foreach (var m in members) m.RunId = runId;
        if (members.Count > 1) rendezvous.Open(runId, members.Count);
        var updated = await store.UpdateAsync(schedule.Id, s =>
        {
            if (!IsActive(s.State)) return false;
            var st = s.Stages[index];
            st.State = RunState.Running;
            st.Attempt = attempt;
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
        var span = CoordinatorTelemetry.Source.StartActivity($"stage {definition.Name}", ActivityKind.Internal, parentContext: default);
        span?.SetTag("cnclip.schedule", schedule.Id);
        span?.SetTag("cnclip.stage", definition.Name);
        span?.SetTag("cnclip.world_size", members.Count);
        span?.SetTag("cnclip.init_from", from);
        if (span is not null) _spans[runId] = span;
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
                    ScheduleId = schedule.Id, StageIndex = index,
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
        if (!report.Succeeded)
        {
            string who = report.Rank < stage.Members.Count ? stage.Members[report.Rank] : "?";
            await FailStage(id, index, report.RunId, $"stage '{stage.Name}' rank {report.Rank} ({who}): {report.Error}");
        }
        else if (report.Rank == 0)
        {
            await store.UpdateAsync(id, s =>
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
        log.LogError("Schedule {Schedule} failed: {Error}", id, error);
    }

    async Task OnWorkerLeft(WorkerConnection worker)
    {
        if (worker.RunId is not { } runId) return;
        var (id, index) = ParseRun(runId);
        var schedule = store.Get(id);
        if (schedule is null || schedule.Stages[index].State != RunState.Running) return;
        int rank = schedule.Stages[index].Members.IndexOf(worker.Info.Name);
        await FailStage(id, index, runId, $"stage '{schedule.Stages[index].Name}': worker {worker.Info.Name} (rank {rank}) left during the stage");
    }

    public async Task<ScheduleStatus?> CancelAsync(string id)
    {
        string? runId = null;
        var updated = await store.UpdateAsync(id, s =>
        {
            if (!IsActive(s.State)) return true; // already over: answer with the final state
            s.State = RunState.Cancelled;
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
        return updated;
    }

    void EndSpan(string runId, ActivityStatusCode status, string? description)
    {
        if (!_spans.TryRemove(runId, out var span)) return;
        span.SetStatus(status, description);
        span.Dispose();
    }
}
