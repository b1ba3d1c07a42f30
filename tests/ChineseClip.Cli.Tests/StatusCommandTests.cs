using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Contracts.Coordinator;
using Google.Protobuf;

namespace ChineseClip.Cli.Tests;

/// <summary>cnclip status against <see cref="FakeCoordinator"/>; the real coordinator is tested by the cluster's functional tests.</summary>
public class StatusCommandTests
{
    [Fact]
    public async Task Without_an_id_it_lists_the_workers_and_the_schedules()
    {
        var fake = new FakeCoordinator();
        fake.Workers.Add(new WorkerInfo { Name = "w1", Device = "cuda:0", BusyWith = "s-7/1/2" });
        fake.Workers.Add(new WorkerInfo { Name = "worker-two", Device = "cpu" });
        fake.Schedules.Add(ClusterCli.ThreeStages());
        fake.Schedules.Add(new ScheduleStatus { Id = "s-8", State = RunState.Pending, Schedule = new Schedule { Name = "next" } });
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("status", "--coordinator", host.Address);

        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(
        [
            "workers: 2",
            "  NAME        DEVICE  BUSY WITH",
            "  w1          cuda:0  s-7/1/2",
            "  worker-two  cpu     idle",
            "schedules: 2",
            "  ID   NAME  STATE    STAGE       UPDATED",
            "  s-7  demo  RUNNING  2/3 flickr  2025-03-01 09:30:05Z",
            "  s-8  next  PENDING  -           -",
        ], r.OutLines);
        Assert.Equal(["ListWorkers", "ListSchedules"], fake.Calls.Select(c => c.Method));
    }

    [Fact]
    public async Task With_an_id_it_prints_a_line_per_stage_with_progress_recall_and_lineage()
    {
        var fake = new FakeCoordinator { Answer = ClusterCli.ThreeStages() };
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("status", "s-7", "--coordinator", host.Address);

        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(
        [
            "schedule s-7 \"demo\": RUNNING  submitted 2025-03-01 09:00:00Z  updated 2025-03-01 09:30:05Z",
            "  1/3 muge     SUCCEEDED  members w1,w2  epoch 3/3  step 300/300  loss 0.4123  20.0 samples/s  "
                + "recall t2i R@1/5/10 40.0/70.3/80.0 mean 63.3  init /models/vit-b-16.pt (from pretrained)  best /runs/s-7/0/checkpoints/best.pt",
            "  2/3 flickr   RUNNING    attempt 2  members w1,w2  epoch 2/5  step 120/480  loss 0.5230  12.5 samples/s  ETA 1m05s  "
                + "init /runs/s-7/0/checkpoints/best.pt (from best of stage 1 muge)",
            "  3/3 private  PENDING    init last-of-previous",
        ], r.OutLines);
        Assert.Equal("s-7", ((GetScheduleRequest)Assert.Single(fake.Calls).Request).Id);
    }

    [Fact]
    public async Task A_failed_schedule_shows_its_error()
    {
        var failed = ClusterCli.ThreeStages(RunState.Failed);
        failed.Stages[1].State = RunState.Failed;
        failed.Stages[1].Error = "rank 1 lost";
        failed.Error = "stage 2/3 flickr failed: rank 1 lost";
        var fake = new FakeCoordinator { Answer = failed };
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("status", "s-7", "--coordinator", host.Address);

        Assert.Equal(0, r.ExitCode);
        Assert.EndsWith("error: rank 1 lost", r.OutLines[2]);
        Assert.DoesNotContain("ETA", r.OutLines[2]);
        Assert.Equal("  error: stage 2/3 flickr failed: rank 1 lost", r.OutLines[^1]);
    }

    [Fact]
    public async Task A_schedule_without_stage_statuses_yet_shows_what_it_asks_for()
    {
        var pending = ClusterCli.ThreeStages(RunState.Pending);
        pending.Stages.Clear();
        var fake = new FakeCoordinator { Answer = pending };
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("status", "s-7", "--coordinator", host.Address);

        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(["  1/3 muge  init pretrained", "  2/3 flickr  init best-of-previous", "  3/3 private  init last-of-previous"], r.OutLines[1..]);
    }

    [Fact]
    public async Task Json_prints_the_proto_json_of_the_answer()
    {
        var fake = new FakeCoordinator { Answer = ClusterCli.ThreeStages() };
        fake.Workers.Add(new WorkerInfo { Name = "w1", Device = "cpu" });
        fake.Schedules.Add(ClusterCli.ThreeStages());
        await using var host = await CoordinatorHost.StartAsync(fake);

        var one = ClusterCli.Run("status", "s-7", "--json", "--coordinator", host.Address);
        Assert.True(one.ExitCode == 0, one.Error);
        Assert.Equal(ClusterCli.ThreeStages(), JsonParser.Default.Parse<ScheduleStatus>(one.Out));
        Assert.Contains("\"init_checkpoint\": \"/models/vit-b-16.pt\"", one.Out);

        var all = ClusterCli.Run("status", "--json", "--coordinator", host.Address);
        Assert.True(all.ExitCode == 0, all.Error);
        using var doc = System.Text.Json.JsonDocument.Parse(all.Out);
        Assert.Equal("w1", doc.RootElement.GetProperty("workers")[0].GetProperty("name").GetString());
        Assert.Equal("s-7", doc.RootElement.GetProperty("schedules")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task An_unknown_id_is_one_line_naming_it()
    {
        var fake = new FakeCoordinator { Refusal = new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.NotFound, "no such schedule")) };
        await using var host = await CoordinatorHost.StartAsync(fake);

        var r = ClusterCli.Run("status", "s-404", "--coordinator", host.Address);

        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal($"cnclip: error: schedule 's-404': not found on the coordinator at {host.Address}\n", r.Error);
    }
}
