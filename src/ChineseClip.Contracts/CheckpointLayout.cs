// Where a training run keeps its checkpoints, with the official file names: RUN_DIR/checkpoints/ holds epoch_latest.pt
// (rewritten every epoch), epoch{N}.pt (every save_epoch_frequency epochs and after the last), epoch{N}_step{S}.pt
// (every save_step_frequency steps inside an epoch) and best.pt (the best epoch-end validation). The trainer writes
// them; workers report their paths to the coordinator, which never looks inside the folder.
using System.Globalization;

namespace ChineseClip.Contracts;

public sealed record CheckpointLayout(string RunDir)
{
    public const string FolderName = "checkpoints";
    public const string LatestFileName = "epoch_latest.pt";
    public const string BestFileName = "best.pt";
    /// <summary>The run's training curves as JSON lines (the trainer writes them; cnclip report reads them).</summary>
    public const string MetricsFileName = "metrics.jsonl";

    public string Folder => Path.Combine(RunDir, FolderName);
    public string Latest => Path.Combine(Folder, LatestFileName);
    public string Best => Path.Combine(Folder, BestFileName);
    public string Metrics => Path.Combine(RunDir, MetricsFileName);

    /// <summary>The layout of the run that wrote <paramref name="checkpoint"/> (a file in its checkpoints folder).</summary>
    public static CheckpointLayout OfCheckpoint(string checkpoint) =>
        new(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(checkpoint))!)!);

    /// <summary>The copy of epoch_latest.pt kept after epoch <paramref name="epoch"/> (counted from 1).</summary>
    public string Epoch(int epoch) => Path.Combine(Folder, string.Create(CultureInfo.InvariantCulture, $"epoch{epoch}.pt"));

    /// <summary>The checkpoint written at global step <paramref name="step"/>, inside epoch <paramref name="epoch"/> (from 1).</summary>
    public string Step(int epoch, long step) => Path.Combine(Folder, string.Create(CultureInfo.InvariantCulture, $"epoch{epoch}_step{step}.pt"));
}
