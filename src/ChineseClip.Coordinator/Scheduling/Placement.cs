// On how many workers a stage runs: pure rules over a schedule's state and the number of free workers (ranks go to
// workers in name order), so that they are tested without a cluster.
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Coordinator.Scheduling;

public static class Placement
{
    /// <summary>The per-GPU batch of the official fine-tuning scripts, for a stage that sets no batch_size.</summary>
    public const int DefaultBatchSize = 128;

    public static bool IsActive(RunState s) => s is RunState.Pending or RunState.Running;

    /// <summary>The stage to start or follow now: the first that has not succeeded; -1 when every stage has.</summary>
    public static int CurrentStage(ScheduleStatus schedule) => schedule.Stages.ToList().FindIndex(st => st.State != RunState.Succeeded);

    public static int PerWorkerBatch(Stage definition) =>
        definition.Hyperparameters.TryGetValue("batch_size", out string? text) && int.TryParse(text, out int b) ? b : DefaultBatchSize;

    /// <summary>Samples per optimiser step over all workers: fixed when the stage first starts, kept by every later
    /// attempt so that the sampler's order and the sample accounting do not change.</summary>
    public static int GlobalBatch(Stage definition, StageStatus stage, int workers) =>
        stage.GlobalBatch > 0 ? stage.GlobalBatch : PerWorkerBatch(definition) * workers;

    /// <summary>How many of the free workers the stage takes now (0 = wait). A first start takes what the stage asks
    /// for; an attempt after a recovery keeps the global batch, so it needs a worker count that divides it.</summary>
    public static int WorkersFor(Stage definition, StageStatus stage, int free)
    {
        int cap = definition.Workers > 0 ? definition.Workers : free;
        if (stage.GlobalBatch == 0) return definition.Workers > 0 && free < definition.Workers ? 0 : cap;
        for (int w = Math.Min(cap, free); w >= 1; w--)
            if (stage.GlobalBatch % w == 0) return w;
        return 0;
    }

    /// <summary>How many workers a running stage is re-formed on now that <paramref name="free"/> more are free
    /// (0 = not now): only when that is more than it has, only at a safe point (a checkpoint written by the current
    /// attempt), and not when the stage is finishing anyway.</summary>
    public static int GrowTo(Stage definition, StageStatus stage, int free)
    {
        if (free == 0) return 0;
        int could = WorkersFor(definition, stage, stage.Members.Count + free);
        if (could <= stage.Members.Count) return 0;
        if (stage.LatestCheckpoint.Length == 0 || stage.LatestCheckpointAttempt != stage.Attempt) return 0;
        if (stage.Progress is { } p && p.Steps > 0 && p.Step >= p.Steps) return 0;
        return could;
    }
}
