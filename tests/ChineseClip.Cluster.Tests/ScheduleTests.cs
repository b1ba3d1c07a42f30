using ChineseClip.Contracts.Coordinator;
using Grpc.Core;

namespace ChineseClip.Cluster.Tests;

[Collection("cluster")]
public class ScheduleTests(ClusterFixture cluster)
{
    [Fact]
    public async Task The_cluster_comes_up_with_both_cpu_workers_joined()
    {
        var workers = (await cluster.Client.ListWorkersAsync(new ListWorkersRequest())).Workers;
        Assert.Equal(["worker-0", "worker-1"], workers.Select(w => w.Name).Order());
        Assert.All(workers, w => Assert.Equal("cpu", w.Device));
    }

    [Fact]
    public async Task An_invalid_schedule_is_refused_with_the_field_named()
    {
        var schedule = new Schedule { Name = "bad", Stages = { cluster.DemoStage("one", "stage1-muge", StageInit.InitScratch, 1) } };
        schedule.Stages.Add(cluster.DemoStage("two", "stage2-flickr", StageInit.InitBestOfPrevious, 1));
        schedule.Stages[1].Hyperparameters["lr"] = "fast";
        var e = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = schedule }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal("stages[1].hyperparameters.lr: 'fast' is not a number", e.Status.Detail);

        schedule.Stages[1].Hyperparameters["lr"] = "0.001";
        schedule.Stages[0].Init = StageInit.InitLastOfPrevious;
        e = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = schedule }).ResponseAsync);
        Assert.Equal("stages[0].init: the first stage has no previous stage", e.Status.Detail);
    }

    [Fact]
    public async Task A_two_stage_schedule_completes_on_both_workers_and_stage_two_starts_from_stage_ones_best_checkpoint()
    {
        var (_, done) = await cluster.RunTwoStages("two stages", "muge", "flickr");
        var (first, second) = (done.Stages[0], done.Stages[1]);
        Assert.Equal(["worker-0", "worker-1"], first.Members);
        Assert.Equal("", first.InitCheckpoint);
        Assert.True(File.Exists(first.BestCheckpoint), first.BestCheckpoint);
        Assert.Equal(first.BestCheckpoint, second.InitCheckpoint);
        Assert.Equal("best checkpoint of stage 'muge'", second.InitFrom);
        Assert.True(File.Exists(second.BestCheckpoint), second.BestCheckpoint);
        Assert.Equal(second.Progress.Steps, second.Progress.Step);
        Assert.True(second.Progress.Loss > 0);
        Assert.Equal(3, second.Progress.T2IRecall.Count);
        Assert.True(File.Exists(Path.Combine(second.RunDir, "checkpoints", "epoch1.pt")));
        // Both stages trained from shards the preprocessor built from the queue.
        foreach (var stage in done.Stages)
        {
            string shards = Path.Combine(Path.GetDirectoryName(stage.RunDir)!, "shards", Path.GetFileName(stage.RunDir));
            Assert.True(File.Exists(Path.Combine(shards, "train-00000.shard")), shards);
        }
    }

    [Fact]
    public async Task A_cancelled_schedule_stops_its_running_stage_and_frees_the_workers()
    {
        var schedule = new Schedule { Name = "cancel me", Stages = { cluster.DemoStage("long", "stage1-muge", StageInit.InitScratch, 50) } };
        schedule.Stages.Add(cluster.DemoStage("never", "stage2-flickr", StageInit.InitBestOfPrevious, 1));
        var submitted = await cluster.Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = schedule });
        var deadline = DateTime.UtcNow + ClusterFixture.Patience;
        while ((await cluster.Client.GetScheduleAsync(new GetScheduleRequest { Id = submitted.Id })).Stages[0].Progress is not { Step: > 0 })
        {
            Assert.True(DateTime.UtcNow < deadline, "the stage never started");
            await Task.Delay(200);
        }

        var cancelled = await cluster.Client.CancelScheduleAsync(new GetScheduleRequest { Id = submitted.Id });
        Assert.Equal(RunState.Cancelled, cancelled.State);
        Assert.Equal([RunState.Cancelled, RunState.Cancelled], cancelled.Stages.Select(s => s.State));
        await cluster.WaitForWorkers(2); // both free again: the run was stopped, not left to finish
        var later = await cluster.Client.GetScheduleAsync(new GetScheduleRequest { Id = submitted.Id });
        Assert.True(later.Stages[0].Progress.Step < later.Stages[0].Progress.Steps, "the stage ran to its end instead of stopping");
    }
}
