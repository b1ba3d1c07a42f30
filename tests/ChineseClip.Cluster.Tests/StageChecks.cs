using System.Text.Json;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cluster.Tests;

/// <summary>What a finished stage's metrics.jsonl must show, whatever happened to the cluster during it.</summary>
public static class StageChecks
{
    public static List<JsonElement> Metrics(StageStatus stage) =>
        File.ReadLines(Path.Combine(stage.RunDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    /// <summary>Every optimiser step of the stage is in the final weights exactly once: read in order, training steps
    /// go 1, 2, 3, ...; a resume from a checkpoint at step k (never beyond what was trained) makes k + 1 the next; the
    /// last step is the stage's last. Returns the resume lines.</summary>
    public static List<JsonElement> AssertEveryStepOnce(StageStatus stage)
    {
        int next = 1;
        var resumes = new List<JsonElement>();
        foreach (var m in Metrics(stage))
        {
            string type = m.GetProperty("type").GetString()!;
            int step = m.GetProperty("step").GetInt32();
            if (type == "resume")
            {
                Assert.True(step < next, $"resumed at step {step}, beyond the {next - 1} steps trained");
                next = step + 1;
                resumes.Add(m);
            }
            else if (type == "train")
            {
                Assert.Equal(next, step);
                next++;
            }
        }
        Assert.True(stage.Progress is not null, $"stage {stage.Name} ({stage.State}) has no progress on record");
        Assert.Equal(stage.Progress.Steps, next - 1);
        return resumes;
    }
}
