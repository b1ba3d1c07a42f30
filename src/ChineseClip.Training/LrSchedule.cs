// The official learning-rate schedule (cn_clip/training/scheduler.py): linear warmup lr*(step+1)/warmup, then a
// cosine decay to 0 over the remaining steps.
namespace ChineseClip.Training;

public sealed record LrSchedule(double BaseLr, int WarmupSteps, int TotalSteps)
{
    public double At(int step)
    {
        if (step < WarmupSteps) return BaseLr * (step + 1) / WarmupSteps;
        int elapsed = step - WarmupSteps, span = TotalSteps - WarmupSteps;
        return 0.5 * (1 + Math.Cos(Math.PI * elapsed / span)) * BaseLr;
    }
}
