using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Contracts.Coordinator;
using Grpc.Core;

namespace ChineseClip.Cli.Tests;

/// <summary>cnclip cancel against <see cref="FakeCoordinator"/>; the real coordinator is tested by the cluster's functional tests.</summary>
public class CancelCommandTests
{
    [Fact]
    public async Task Cancel_sends_the_id_and_prints_the_state_the_coordinator_answers()
    {
        var fake = new FakeCoordinator { Answer = new ScheduleStatus { Id = "s-7", State = RunState.Cancelled } };
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("cancel", "s-7", "--coordinator", host.Address);

        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal("schedule s-7: CANCELLED\n", r.Out);
        var call = Assert.Single(fake.Calls);
        Assert.Equal("CancelSchedule", call.Method);
        Assert.Equal("s-7", ((GetScheduleRequest)call.Request).Id);
    }

    [Fact]
    public async Task A_refused_token_and_an_unexpected_answer_are_one_line_each()
    {
        var fake = new FakeCoordinator { Refusal = new RpcException(new Status(StatusCode.Unauthenticated, "wrong cnclip-token")) };
        await using var host = await CoordinatorHost.StartAsync(fake);

        var refused = ClusterCli.Run("cancel", "s-7", "--coordinator", host.Address);
        Assert.Equal(ExitCodes.BadInput, refused.ExitCode);
        Assert.Equal($"cnclip: error: the coordinator at {host.Address} refused the call (wrong cnclip-token); set $CNCLIP_TOKEN to the cluster's token\n", refused.Error);

        fake.Refusal = new RpcException(new Status(StatusCode.Internal, "disk full"));
        var broken = ClusterCli.Run("cancel", "s-7", "--coordinator", host.Address);
        Assert.Equal(ExitCodes.Failure, broken.ExitCode);
        Assert.Equal($"cnclip: error: the coordinator at {host.Address} answered Internal: disk full\n", broken.Error);
    }
}
