namespace ChineseClip.Training.Tests;

public class LrScheduleTests
{
    [Fact]
    public void Warmup_is_linear_from_the_first_step_then_cosine_reaches_zero_at_the_end()
    {
        var s = new LrSchedule(BaseLr: 5e-5, WarmupSteps: 100, TotalSteps: 1000);
        Assert.Equal(5e-5 / 100, s.At(0), 15);
        Assert.Equal(5e-5 * 50 / 100, s.At(49), 15);
        Assert.Equal(5e-5, s.At(100), 15);
        Assert.Equal(5e-5 / 2, s.At(550), 12);
        Assert.Equal(0, s.At(1000), 15);
    }
}
