// The coordinator's own spans (schedule > stage) and metrics (training progress as the workers report it).
using System.Diagnostics;
using System.Diagnostics.Metrics;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Coordinator.Scheduling;

public static class CoordinatorTelemetry
{
    public const string Name = "ChineseClip.Coordinator";
    public static readonly ActivitySource Source = new(Name);

    /// <summary>Starts a span that lives longer than the code that starts it (a schedule, a stage run), so it is not
    /// left as <see cref="Activity.Current"/> for that code's later work. Without <paramref name="parent"/> its parent
    /// is the current span (a schedule's: the SubmitSchedule call).</summary>
    public static Activity? StartLongSpan(string name, ActivityContext parent = default)
    {
        var current = Activity.Current;
        var span = Source.StartActivity(name, ActivityKind.Internal, parent);
        Activity.Current = current;
        return span;
    }

    /// <summary>The parent that a stored W3C traceparent names; default (no parent) when it is empty or malformed.</summary>
    public static ActivityContext ParentFrom(string traceparent) =>
        ActivityContext.TryParse(traceparent, null, isRemote: true, out var context) ? context : default;
    static readonly Meter Meter = new(Name);

    public static readonly Histogram<double> Loss = Meter.CreateHistogram<double>("cnclip.train.loss", description: "Training loss of the global batch");
    public static readonly Histogram<double> LearningRate = Meter.CreateHistogram<double>("cnclip.train.lr");
    public static readonly Histogram<double> SamplesPerSecond = Meter.CreateHistogram<double>("cnclip.train.samples_per_second", "{sample}/s");
    public static readonly Histogram<double> DataSeconds = Meter.CreateHistogram<double>("cnclip.train.data_time", "s");
    public static readonly Histogram<double> ComputeSeconds = Meter.CreateHistogram<double>("cnclip.train.compute_time", "s");
    public static readonly Histogram<double> AllReduceSeconds = Meter.CreateHistogram<double>("cnclip.train.allreduce_time", "s");
    public static readonly Histogram<double> MeanRecall = Meter.CreateHistogram<double>("cnclip.valid.mean_recall", "%");
    public static readonly Counter<long> StagesDone = Meter.CreateCounter<long>("cnclip.stages.completed");

    /// <summary>Records a progress report in the training metrics (recall only when it carries a validation).</summary>
    public static void Record(Progress p)
    {
        Loss.Record(p.Loss);
        LearningRate.Record(p.Lr);
        SamplesPerSecond.Record(p.SamplesPerSecond);
        DataSeconds.Record(p.DataSeconds);
        ComputeSeconds.Record(p.ComputeSeconds);
        AllReduceSeconds.Record(p.AllreduceSeconds);
        if (p.T2IRecall.Count > 0) MeanRecall.Record(p.MeanRecall);
    }
}
