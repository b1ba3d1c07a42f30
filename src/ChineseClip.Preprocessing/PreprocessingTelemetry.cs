using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ChineseClip.Preprocessing;

/// <summary>The ActivitySource and Meter "ChineseClip.Preprocessing" (ServiceDefaults exports "ChineseClip.*").</summary>
public static class PreprocessingTelemetry
{
    public const string Name = "ChineseClip.Preprocessing";

    public static readonly ActivitySource Source = new(Name);
    static readonly Meter Meter = new(Name);

    public static readonly Counter<long> ShardsDone = Meter.CreateCounter<long>("cnclip.preprocess.shards_done", "{shard}", "Shards written and completed");
    public static readonly Counter<long> ShardsFailed = Meter.CreateCounter<long>("cnclip.preprocess.shards_failed", "{shard}", "Deliveries that failed");

    static QueueCounters? _lastCounters;

    static PreprocessingTelemetry()
    {
        Meter.CreateObservableGauge("cnclip.preprocess.queue_depth", () => _lastCounters?.Queued ?? 0, "{task}", "Tasks waiting in the queue");
        Meter.CreateObservableGauge("cnclip.preprocess.running", () => _lastCounters?.Running ?? 0, "{task}", "Tasks under a lease");
    }

    /// <summary>The latest counters a consumer of this process read (the gauges report them).</summary>
    public static void Observe(QueueCounters counters) => _lastCounters = counters;

    /// <summary>The traceparent of the current activity, for a task enqueued now.</summary>
    public static string? CurrentTraceParent() => Activity.Current?.Id is { } id && Activity.Current.IdFormat == ActivityIdFormat.W3C ? id : null;

    /// <summary>Starts the processing activity as a child of the task's traceparent (a new trace when it has none or
    /// it does not parse).</summary>
    public static Activity? StartProcessing(TaskLease lease)
    {
        var task = lease.Task;
        ActivityContext.TryParse(task.TraceParent, null, out var parent);
        var activity = Source.StartActivity("preprocess shard", ActivityKind.Consumer, parent);
        activity?.SetTag("cnclip.task.id", task.Id);
        activity?.SetTag("cnclip.shard", task.Shard);
        activity?.SetTag("cnclip.split", task.Split);
        activity?.SetTag("cnclip.attempt", lease.Failures + 1);
        return activity;
    }
}
