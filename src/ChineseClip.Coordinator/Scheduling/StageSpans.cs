// The coordinator's open spans: one per schedule (from submission to its end) and one per stage run, its child
// (parented through the schedule's stored traceparent, so also after a coordinator restart). A span not ended here
// (the coordinator was killed) is not exported; stages started later still name it as their parent.
using System.Collections.Concurrent;
using System.Diagnostics;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class StageSpans
{
    readonly ConcurrentDictionary<string, Activity> _runs = new();
    readonly ConcurrentDictionary<string, Activity> _schedules = new();

    /// <summary>Starts a schedule's span, a child of the current one (the submitting call's); <see cref="KeepSchedule"/>
    /// it once the schedule is stored.</summary>
    public static Activity? StartSchedule(string id, Schedule schedule)
    {
        var span = CoordinatorTelemetry.StartLongSpan($"schedule {id}");
        span?.SetTag("cnclip.schedule", id);
        span?.SetTag("cnclip.schedule.name", schedule.Name);
        span?.SetTag("cnclip.stages", schedule.Stages.Count);
        return span;
    }

    public void KeepSchedule(string id, Activity? span)
    {
        if (span is not null) _schedules[id] = span;
    }

    /// <summary>Starts and keeps the span of a stage run; its id is the traceparent the run's workers continue.</summary>
    public Activity? StartRun(ScheduleStatus schedule, RunId run, int worldSize, string initFrom)
    {
        string stage = schedule.Schedule.Stages[run.StageIndex].Name;
        var span = CoordinatorTelemetry.StartLongSpan($"stage {stage}", CoordinatorTelemetry.ParentFrom(schedule.Traceparent));
        span?.SetTag("cnclip.schedule", schedule.Id);
        span?.SetTag("cnclip.stage", stage);
        span?.SetTag("cnclip.run", run.ToString());
        span?.SetTag("cnclip.world_size", worldSize);
        span?.SetTag("cnclip.init_from", initFrom);
        if (span is not null) _runs[run.ToString()] = span;
        return span;
    }

    public void EndRun(string runId, ActivityStatusCode status, string? description) => End(_runs, runId, status, description);

    public void EndSchedule(string id, ActivityStatusCode status, string? description) => End(_schedules, id, status, description);

    static void End(ConcurrentDictionary<string, Activity> spans, string key, ActivityStatusCode status, string? description)
    {
        if (!spans.TryRemove(key, out var span)) return;
        span.SetStatus(status, description);
        span.Dispose();
    }

    /// <summary>Ends every open span for a coordinator that stops, so that they are exported: the schedules and runs go
    /// on (the workers keep training, the next coordinator continues the schedules and parents their next stages to
    /// the same schedule spans), which the tag says.</summary>
    public void EndAllAtStop()
    {
        foreach (var spans in new[] { _runs, _schedules })
            foreach (var key in spans.Keys)
                if (spans.TryRemove(key, out var span))
                {
                    span.SetTag("cnclip.coordinator_stopped", true);
                    span.Dispose();
                }
    }
}
