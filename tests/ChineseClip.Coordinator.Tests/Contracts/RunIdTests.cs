using ChineseClip.Contracts;

namespace ChineseClip.Coordinator.Tests.Contracts;

public class RunIdTests
{
    [Fact]
    public void A_run_id_is_schedule_stage_and_attempt_joined_by_slashes_and_reads_back()
    {
        var run = new RunId("20261204-101500-a1b2c3", 2, 3);
        Assert.Equal("20261204-101500-a1b2c3/2/3", run.ToString());
        Assert.Equal("20261204-101500-a1b2c3/2", run.Stage);
        Assert.Equal(run, RunId.Parse(run.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("s/1")]
    [InlineData("s/1/2/3")]
    [InlineData("/1/2")]
    [InlineData("s/x/2")]
    [InlineData("s/1/-2")]
    [InlineData("s/01/2")]
    public void Text_that_is_not_a_run_id_is_refused_naming_it(string text)
    {
        Assert.False(RunId.TryParse(text, out var id));
        Assert.Equal(default, id);
        Assert.Contains($"'{text}' is not a run id", Assert.Throws<FormatException>(() => RunId.Parse(text)).Message);
    }

    [Fact]
    public void Every_attempt_of_a_stage_shares_its_stage_key()
    {
        Assert.Equal(new RunId("s", 1, 1).Stage, new RunId("s", 1, 4).Stage);
        Assert.NotEqual(new RunId("s", 1, 1).Stage, new RunId("s", 2, 1).Stage);
        Assert.Equal("s/1", RunId.StageKey("s", 1));
    }
}
