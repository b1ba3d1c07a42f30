using System.Text.RegularExpressions;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cluster.Tests;

/// <summary>A schedule is one trace: the coordinator's schedule span, a stage span per stage run as its child, each
/// rank's "train stage" span on the workers as the stage span's child (through StageAssignment.traceparent), and the
/// trainer's epoch spans as children of that.</summary>
[Collection("cluster")]
public sealed class TelemetryTests(ClusterFixture cluster)
{
    [Fact]
    public async Task A_schedule_is_one_trace_from_its_schedule_span_through_stages_and_workers_to_epochs()
    {
        var (submitted, done) = await cluster.RunTwoStages("traced", "first", "second");
        var (traceId, scheduleSpanId) = ScheduleTrace.ScheduleSpan(submitted);
        Assert.Equal(submitted.Traceparent, done.Traceparent);
        // The last spans end as the stage does (the workers' after their report): give the exports a moment.
        var spans = await cluster.Telemetry.SpansWhen(
            all => all.Any(s => s.SpanId == scheduleSpanId) && ScheduleTrace.Exported(done.Id, stages: 2, trains: 4, epochs: 6)(all), TimeSpan.FromSeconds(30));

        var root = Assert.Single(spans, s => s.SpanId == scheduleSpanId);
        Assert.Equal(($"schedule {done.Id}", "coordinator", "ChineseClip.Coordinator", traceId), (root.Name, root.Service, root.Scope, root.TraceId));
        var stages = spans.Where(s => s.Scope == "ChineseClip.Coordinator" && s.Attribute("cnclip.schedule") == done.Id && s.Name.StartsWith("stage ")).ToList();
        Assert.Equal(["stage first", "stage second"], stages.Select(s => s.Name).Order());
        Assert.All(stages, s => Assert.Equal((traceId, scheduleSpanId), (s.TraceId, s.ParentSpanId)));
        ScheduleTrace.AssertStageRunTrace(spans, stages.Single(s => s.Name == "stage first"), ranks: 2, ["epoch 1", "epoch 2"]);
        ScheduleTrace.AssertStageRunTrace(spans, stages.Single(s => s.Name == "stage second"), ranks: 2, ["epoch 1"]);
    }
}

/// <summary>What the telemetry tests check of a schedule's trace, from the spans an <see cref="OtlpReceiver"/> got.</summary>
public static class ScheduleTrace
{
    /// <summary>The trace id and span id of a schedule's traceparent (W3C, sampled).</summary>
    public static (string TraceId, string SpanId) ScheduleSpan(ScheduleStatus status)
    {
        var match = Regex.Match(status.Traceparent, "^00-([0-9a-f]{32})-([0-9a-f]{16})-01$");
        Assert.True(match.Success, $"schedule {status.Id}: traceparent '{status.Traceparent}'");
        return (match.Groups[1].Value, match.Groups[2].Value);
    }

    /// <summary>At least so many of a schedule's stage spans, "train stage" spans and epoch spans have come.</summary>
    public static Func<IReadOnlyList<OtlpReceiver.Span>, bool> Exported(string scheduleId, int stages, int trains, int epochs) => spans =>
    {
        var trainSpans = spans.Where(s => s.Name == "train stage" && s.Attribute("cnclip.schedule") == scheduleId).ToList();
        var ids = trainSpans.Select(t => t.SpanId).ToHashSet();
        return spans.Count(s => s.Name.StartsWith("stage ") && s.Attribute("cnclip.schedule") == scheduleId) >= stages
            && trainSpans.Count >= trains && spans.Count(s => s.Scope == "ChineseClip.Training" && ids.Contains(s.ParentSpanId)) >= epochs;
    };

    /// <summary>Checks the trace below one stage span: a "train stage" span per rank (on the workers), in the same trace
    /// and the stage span's children, each the parent of the rank's epoch spans <paramref name="epochs"/>.</summary>
    public static void AssertStageRunTrace(IReadOnlyList<OtlpReceiver.Span> spans, OtlpReceiver.Span stage, int ranks, string[] epochs)
    {
        string run = stage.Attribute("cnclip.run");
        Assert.NotEqual("", run);
        // Found by run, not by trace: a train stage span that started a trace of its own must fail here, not go missing.
        var trains = spans.Where(s => s.Name == "train stage" && s.Attribute("cnclip.run") == run).ToList();
        Assert.Equal(Enumerable.Range(0, ranks).Select(r => $"{r}"), trains.Select(t => t.Attribute("cnclip.rank")).Order());
        foreach (var train in trains)
        {
            Assert.StartsWith("worker-", train.Service);
            Assert.Equal("ChineseClip.Worker", train.Scope);
            Assert.Equal(stage.TraceId, train.TraceId);
            Assert.Equal(stage.SpanId, train.ParentSpanId);
            var children = spans.Where(s => s.ParentSpanId == train.SpanId && s.Scope == "ChineseClip.Training").ToList();
            Assert.Equal(epochs, children.Select(e => e.Name).Order());
            Assert.All(children, e => Assert.Equal(train.TraceId, e.TraceId));
            Assert.All(children, e => Assert.Equal(train.Attribute("cnclip.rank"), e.Attribute("cnclip.rank")));
        }
    }
}
