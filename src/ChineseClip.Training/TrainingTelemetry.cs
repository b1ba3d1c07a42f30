// The trainer's spans: one per epoch, a child of whatever span is current when Trainer.Run is called (in the cluster,
// the worker's "train stage" span), tagged with its epoch, rank and steps (an epoch cut short by a failure or a cancel
// has no cnclip.last_step). Nothing is recorded unless a listener (OpenTelemetry's "ChineseClip.*" sources in
// the service defaults, a test's ActivityListener) asks for this source.
using System.Diagnostics;

namespace ChineseClip.Training;

public static class TrainingTelemetry
{
    public const string Name = "ChineseClip.Training";
    public static readonly ActivitySource Source = new(Name);
}
