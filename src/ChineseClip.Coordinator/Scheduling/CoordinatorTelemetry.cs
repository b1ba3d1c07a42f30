// The coordinator's own spans (schedule > stage) and metrics (training progress as the workers report it).
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ChineseClip.Coordinator.Scheduling;

public static class CoordinatorTelemetry
{
    public const string Name = "ChineseClip.Coordinator";
    public static readonly ActivitySource Source = new(Name);
    static readonly Meter Meter = new(Name);

    public static readonly Histogram<double> Loss = Meter.CreateHistogram<double>("cnclip.train.loss", description: "Training loss of the global batch");
    public static readonly Histogram<double> LearningRate = Meter.CreateHistogram<double>("cnclip.train.lr");
    public static readonly Histogram<double> SamplesPerSecond = Meter.CreateHistogram<double>("cnclip.train.samples_per_second", "{sample}/s");
    public static readonly Histogram<double> DataSeconds = Meter.CreateHistogram<double>("cnclip.train.data_time", "s");
    public static readonly Histogram<double> ComputeSeconds = Meter.CreateHistogram<double>("cnclip.train.compute_time", "s");
    public static readonly Histogram<double> AllReduceSeconds = Meter.CreateHistogram<double>("cnclip.train.allreduce_time", "s");
    public static readonly Histogram<double> MeanRecall = Meter.CreateHistogram<double>("cnclip.valid.mean_recall", "%");
    public static readonly Counter<long> StagesDone = Meter.CreateCounter<long>("cnclip.stages.completed");
}
