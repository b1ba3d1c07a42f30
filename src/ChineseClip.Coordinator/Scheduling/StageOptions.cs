// What one attempt of a stage trains: where it starts from (lineage), where it writes, and the training options every
// rank receives (a JSON object of official argument names). Pure: a function of the schedule's state, the number of
// workers and the runs folder.
using System.Text.Json.Nodes;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Coordinator.Scheduling;

/// <summary>An attempt's plan: its options as JSON, the run folder (Logs/Name), the global batch, and the checkpoint
/// the stage starts from with where that came from.</summary>
public sealed record StagePlan(string Logs, string Name, int GlobalBatch, string Init, string InitFrom, JsonObject Options)
{
    public string RunDir => Path.Combine(Logs, Name);
}

public static class StageOptions
{
    /// <summary>The plan of the next attempt of stage <paramref name="index"/> on <paramref name="workers"/> workers;
    /// runs write under RUNS/{schedule id}/{index}-{stage name}.</summary>
    public static StagePlan Plan(ScheduleStatus schedule, int index, int workers, string runsDirectory)
    {
        var definition = schedule.Schedule.Stages[index];
        var status = schedule.Stages[index];
        int globalBatch = Placement.GlobalBatch(definition, status, workers);
        var (init, from) = status.Attempt > 0 ? (status.InitCheckpoint, status.InitFrom) : Lineage(schedule, index);
        string logs = Path.GetFullPath(Path.Combine(runsDirectory, schedule.Id));
        string name = $"{index}-{definition.Name}";

        var train = new JsonObject
        {
            ["train_data"] = definition.TrainData, ["arch"] = definition.Arch, ["vocab"] = definition.Vocab,
            ["logs"] = logs, ["name"] = name,
        };
        if (definition.ValData.Length > 0) train["val_data"] = definition.ValData;
        foreach (var (key, value) in definition.Hyperparameters)
            if (TrainArguments.TryToJson(key, value, out string json, out _)) train[key] = JsonNode.Parse(json);
        int share = globalBatch / workers;
        train["batch_size"] = share;
        // Fewer workers than the stage started on: each computes several ranks of that run, so that the steps (and
        // the losses) stay those of the uninterrupted run instead of drifting by float rounding (TrainStep.RunAsRanks).
        int perRank = Placement.PerWorkerBatch(definition);
        bool accumulates = definition.Hyperparameters.TryGetValue("accum_freq", out string? accum) && accum.Trim() != "1";
        if (share > perRank && share % perRank == 0 && !accumulates) train["ranks_per_worker"] = share / perRank;
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
        return new StagePlan(logs, name, globalBatch, init, from, train);
    }

    /// <summary>The checkpoint a stage's first attempt starts from ("" = random init) and where it came from.</summary>
    public static (string Checkpoint, string From) Lineage(ScheduleStatus schedule, int index)
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
}
