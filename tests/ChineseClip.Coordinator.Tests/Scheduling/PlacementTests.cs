using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Scheduling;

namespace ChineseClip.Coordinator.Tests.Scheduling;

public class PlacementTests
{
    static Stage Definition(int workers = 0, string? batch = null)
    {
        var s = new Stage { Name = "s", Workers = workers };
        if (batch is not null) s.Hyperparameters["batch_size"] = batch;
        return s;
    }

    static StageStatus Running(int members, int globalBatch, int attempt = 1)
    {
        var s = new StageStatus { State = RunState.Running, GlobalBatch = globalBatch, Attempt = attempt };
        s.Members.AddRange(Enumerable.Range(0, members).Select(i => $"worker-{i}"));
        return s;
    }

    [Theory]
    [InlineData(0, 3, 3)] // every free worker
    [InlineData(2, 3, 2)] // as many as asked
    [InlineData(2, 1, 0)] // waits for as many as asked
    [InlineData(0, 0, 0)]
    public void A_first_start_takes_the_workers_the_stage_asks_for_or_every_free_one(int asked, int free, int expected)
    {
        Assert.Equal(expected, Placement.WorkersFor(Definition(asked), new StageStatus(), free));
    }

    [Theory]
    [InlineData(32, 3, 2)] // 3 do not divide 32: two take it
    [InlineData(32, 4, 4)]
    [InlineData(48, 5, 4)]
    [InlineData(7, 6, 1)]
    [InlineData(32, 0, 0)]
    public void A_later_attempt_keeps_the_global_batch_so_it_takes_a_worker_count_that_divides_it(int globalBatch, int free, int expected)
    {
        Assert.Equal(expected, Placement.WorkersFor(Definition(), new StageStatus { GlobalBatch = globalBatch }, free));
    }

    [Fact]
    public void The_global_batch_is_the_per_worker_batch_times_the_workers_until_it_is_fixed()
    {
        Assert.Equal(3 * Placement.DefaultBatchSize, Placement.GlobalBatch(Definition(), new StageStatus(), 3));
        Assert.Equal(48, Placement.GlobalBatch(Definition(batch: "16"), new StageStatus(), 3));
        Assert.Equal(32, Placement.GlobalBatch(Definition(batch: "16"), new StageStatus { GlobalBatch = 32 }, 3));
    }

    [Fact]
    public void The_current_stage_is_the_first_that_has_not_succeeded()
    {
        var schedule = new ScheduleStatus();
        schedule.Stages.Add(new StageStatus { State = RunState.Succeeded });
        schedule.Stages.Add(new StageStatus { State = RunState.Pending });
        Assert.Equal(1, Placement.CurrentStage(schedule));
        schedule.Stages[1].State = RunState.Succeeded;
        Assert.Equal(-1, Placement.CurrentStage(schedule));
    }

    [Fact]
    public void A_stage_grows_only_at_a_checkpoint_of_its_current_attempt()
    {
        var stage = Running(members: 1, globalBatch: 32, attempt: 2);
        Assert.Equal(0, Placement.GrowTo(Definition(), stage, free: 1)); // no checkpoint yet
        stage.LatestCheckpoint = "/runs/s/0-s/checkpoints/epoch1_step3.pt";
        stage.LatestCheckpointAttempt = 1;
        Assert.Equal(0, Placement.GrowTo(Definition(), stage, free: 1)); // the previous attempt's: where this one started
        stage.LatestCheckpointAttempt = 2;
        Assert.Equal(2, Placement.GrowTo(Definition(), stage, free: 1));
        Assert.Equal(0, Placement.GrowTo(Definition(), stage, free: 0));
    }

    [Fact]
    public void A_stage_does_not_grow_beyond_what_it_asks_for_what_divides_its_batch_or_when_it_is_finishing()
    {
        var stage = Running(members: 2, globalBatch: 32);
        stage.LatestCheckpoint = "/c.pt";
        stage.LatestCheckpointAttempt = 1;
        Assert.Equal(0, Placement.GrowTo(Definition(workers: 2), stage, free: 2));
        Assert.Equal(0, Placement.GrowTo(Definition(), stage, free: 1)); // 3 do not divide 32
        Assert.Equal(4, Placement.GrowTo(Definition(), stage, free: 2));
        stage.Progress = new Progress { Step = 100, Steps = 100 };
        Assert.Equal(0, Placement.GrowTo(Definition(), stage, free: 2));
    }
}
