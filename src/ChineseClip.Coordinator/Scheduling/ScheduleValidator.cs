// What a schedule must satisfy before it is accepted; every problem names its field (stages[1].hyperparameters.lr).
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Coordinator.Scheduling;

public static class ScheduleValidator
{
    /// <summary>The first problem found, as "field: what is wrong", or null when the schedule is valid.</summary>
    public static string? FirstProblem(Schedule? schedule)
    {
        if (schedule is null) return "schedule: missing";
        if (schedule.Stages.Count == 0) return "stages: a schedule needs at least one stage";
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < schedule.Stages.Count; i++)
        {
            var s = schedule.Stages[i];
            string at = $"stages[{i}]";
            if (string.IsNullOrWhiteSpace(s.Name)) return $"{at}.name: missing";
            if (!names.Add(s.Name)) return $"{at}.name: '{s.Name}' is used by an earlier stage";
            if (string.IsNullOrWhiteSpace(s.TrainData)) return $"{at}.train_data: missing";
            if (!Directory.Exists(s.TrainData)) return $"{at}.train_data: folder '{s.TrainData}' not found";
            if (s.ValData.Length > 0 && !Directory.Exists(s.ValData)) return $"{at}.val_data: folder '{s.ValData}' not found";
            if (string.IsNullOrWhiteSpace(s.Arch)) return $"{at}.arch: missing";
            if (s.Arch.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !File.Exists(s.Arch)) return $"{at}.arch: file '{s.Arch}' not found";
            if (string.IsNullOrWhiteSpace(s.Vocab)) return $"{at}.vocab: missing";
            if (!File.Exists(s.Vocab)) return $"{at}.vocab: file '{s.Vocab}' not found";
            if (s.Workers < 0) return $"{at}.workers: must not be negative";
            switch (s.Init)
            {
                case StageInit.InitPretrained when string.IsNullOrWhiteSpace(s.Pretrained):
                    return $"{at}.pretrained: init is pretrained but no checkpoint is given";
                case StageInit.InitPretrained when !File.Exists(s.Pretrained):
                    return $"{at}.pretrained: file '{s.Pretrained}' not found";
                case StageInit.InitBestOfPrevious or StageInit.InitLastOfPrevious when i == 0:
                    return $"{at}.init: the first stage has no previous stage";
                case not (StageInit.InitDefault or StageInit.InitScratch or StageInit.InitPretrained or StageInit.InitBestOfPrevious or StageInit.InitLastOfPrevious):
                    return $"{at}.init: unknown value {(int)s.Init}";
            }
            if (s.Init != StageInit.InitPretrained && s.Pretrained.Length > 0) return $"{at}.pretrained: given, but init is {s.Init}";
            foreach (var (key, value) in s.Hyperparameters)
            {
                if (TrainArguments.FromStage.Contains(key)) return $"{at}.hyperparameters.{key}: set by the stage itself, not a hyperparameter";
                if (!TrainArguments.TryToJson(key, value, out _, out string why)) return $"{at}.hyperparameters.{key}: {why}";
            }
        }
        return null;
    }
}
