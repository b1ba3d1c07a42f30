using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cli.Tests;

/// <summary>cnclip watch against <see cref="FakeCoordinator"/>; the real coordinator is tested by the cluster's functional tests.</summary>
public class WatchCommandTests
{
    // The updates of a run of stage 2 to its end: two progress reports, then the given final state.
    static IEnumerable<ScheduleStatus> Updates(RunState final)
    {
        var s = ClusterCli.ThreeStages();
        yield return s.Clone();
        s.Stages[1].Progress.Step = 240;
        s.Stages[1].Progress.Epoch = 3;
        s.Stages[1].Progress.EtaSeconds = 3725;
        yield return s.Clone();
        yield return s.Clone(); // the same progress again prints nothing new
        s.State = final;
        s.Stages[1].State = final;
        if (final == RunState.Failed) s.Error = "stage 2/3 flickr failed: out of memory";
        yield return s.Clone();
    }

    [Fact]
    public async Task Watch_prints_progress_bars_and_exits_0_when_the_schedule_succeeds()
    {
        var fake = new FakeCoordinator();
        fake.Updates.AddRange(Updates(RunState.Succeeded));
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("watch", "s-7", "--coordinator", host.Address);

        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal("schedule s-7: RUNNING", r.OutLines[0]);
        Assert.StartsWith("  1/3 muge  SUCCEEDED", r.OutLines[1]);
        Assert.StartsWith("  2/3 flickr  RUNNING", r.OutLines[2]);
        Assert.StartsWith("  3/3 private  PENDING", r.OutLines[3]);
        Assert.Equal("  2/3 flickr [##########..........]  50%  epoch 3/5  step 240/480  loss 0.5230  12.5 samples/s  ETA 1h02m", r.OutLines[4]);
        Assert.Equal("schedule s-7: SUCCEEDED", r.OutLines[5]);
        Assert.StartsWith("  2/3 flickr  SUCCEEDED", r.OutLines[6]);
        Assert.Equal(7, r.OutLines.Length);
        Assert.Empty(r.Error);
        Assert.Equal("s-7", ((GetScheduleRequest)Assert.Single(fake.Calls).Request).Id);
    }

    [Theory]
    [InlineData(RunState.Failed, "cnclip: error: schedule s-7 FAILED: stage 2/3 flickr failed: out of memory\n")]
    [InlineData(RunState.Cancelled, "cnclip: error: schedule s-7 CANCELLED\n")]
    public async Task Watch_exits_1_with_the_final_state_when_the_schedule_fails_or_is_cancelled(RunState final, string error)
    {
        var fake = new FakeCoordinator();
        fake.Updates.AddRange(Updates(final));
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("watch", "s-7", "--coordinator", host.Address);

        Assert.Equal(ExitCodes.Failure, r.ExitCode);
        Assert.Contains($"schedule s-7: {final.ToString().ToUpperInvariant()}", r.OutLines);
        Assert.Equal(error, r.Error);
    }

    [Fact]
    public async Task A_watch_that_ends_before_the_schedule_does_is_an_error()
    {
        var fake = new FakeCoordinator();
        fake.Updates.Add(ClusterCli.ThreeStages());
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("watch", "s-7", "--coordinator", host.Address);

        Assert.Equal(ExitCodes.Failure, r.ExitCode);
        Assert.Equal("cnclip: error: the coordinator ended the watch of 's-7' before the schedule finished (last state: RUNNING)\n", r.Error);
    }
}
