using System.Text.Json.Nodes;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Scheduling;

namespace ChineseClip.Coordinator.Tests.Scheduling;

public class StageOptionsTests
{
    static ScheduleStatus TwoStages(StageInit secondInit = StageInit.InitDefault)
    {
        var schedule = new ScheduleStatus { Id = "sched", Schedule = new Schedule { Name = "two" } };
        foreach (var (name, init) in new[] { ("muge", StageInit.InitDefault), ("flickr", secondInit) })
        {
            var stage = new Stage { Name = name, TrainData = $"/data/{name}", Arch = "RN50@RBT3-chinese", Vocab = "/v.txt", Init = init };
            stage.Hyperparameters["batch_size"] = "16";
            stage.Hyperparameters["lr"] = "5e-5";
            stage.Hyperparameters["freeze_vision"] = "True";
            schedule.Schedule.Stages.Add(stage);
            schedule.Stages.Add(new StageStatus { Name = name, State = RunState.Pending });
        }
        return schedule;
    }

    [Fact]
    public void A_first_stage_trains_from_random_init_with_its_hyperparameters_typed_and_writes_under_the_runs_folder()
    {
        var plan = StageOptions.Plan(TwoStages(), 0, workers: 2, "/runs");
        Assert.Equal(("", "random initialisation", 32), (plan.Init, plan.InitFrom, plan.GlobalBatch));
        Assert.Equal(Path.Combine("/runs", "sched", "0-muge"), plan.RunDir);
        var o = plan.Options;
        Assert.Equal("/data/muge", (string?)o["train_data"]);
        Assert.Equal("/runs/sched", (string?)o["logs"]);
        Assert.Equal("0-muge", (string?)o["name"]);
        Assert.Equal(16, (int?)o["batch_size"]);
        Assert.Equal(5e-5, (double?)o["lr"]);
        Assert.True((bool?)o["freeze_vision"]);
        Assert.False(o.ContainsKey("resume"));
        Assert.False(o.ContainsKey("val_data"));
    }

    [Fact]
    public void Every_key_the_options_hold_is_a_training_argument()
    {
        var schedule = TwoStages();
        schedule.Schedule.Stages[1].ValData = "/data/valid";
        schedule.Stages[0].BestCheckpoint = "/best.pt";
        var options = StageOptions.Plan(schedule, 1, workers: 1, "/runs").Options;
        Assert.All(options, kv => Assert.True(TrainArguments.All.ContainsKey(kv.Key), kv.Key));
    }

    [Theory]
    [InlineData(StageInit.InitDefault, "/best.pt", "best checkpoint of stage 'muge'")]
    [InlineData(StageInit.InitBestOfPrevious, "/best.pt", "best checkpoint of stage 'muge'")]
    [InlineData(StageInit.InitLastOfPrevious, "/last.pt", "last checkpoint of stage 'muge'")]
    public void A_later_stage_starts_from_the_weights_of_the_previous_one_at_epoch_zero(StageInit init, string checkpoint, string from)
    {
        var schedule = TwoStages(init);
        schedule.Stages[0].BestCheckpoint = "/best.pt";
        schedule.Stages[0].LastCheckpoint = "/last.pt";
        var plan = StageOptions.Plan(schedule, 1, workers: 1, "/runs");
        Assert.Equal((checkpoint, from), (plan.Init, plan.InitFrom));
        Assert.Equal(checkpoint, (string?)plan.Options["resume"]);
        Assert.True((bool?)plan.Options["reset_data_offset"]);
        Assert.True((bool?)plan.Options["reset_optimizer"]);
    }

    [Fact]
    public void Best_of_previous_falls_back_to_the_last_checkpoint_when_the_previous_stage_did_not_validate()
    {
        var schedule = TwoStages();
        schedule.Stages[0].LastCheckpoint = "/last.pt";
        Assert.Equal(("/last.pt", "last checkpoint of stage 'muge'"), StageOptions.Lineage(schedule, 1));
    }

    [Fact]
    public void A_recovery_resumes_exactly_from_its_checkpoint_keeps_the_lineage_and_splits_the_same_global_batch()
    {
        var schedule = TwoStages();
        var status = schedule.Stages[0];
        status.Attempt = 1;
        status.GlobalBatch = 32;
        status.InitCheckpoint = "/pretrained.pt";
        status.InitFrom = "pretrained checkpoint";
        status.ResumedFrom = "/runs/sched/0-muge/checkpoints/epoch1_step3.pt";
        var plan = StageOptions.Plan(schedule, 0, workers: 1, "/runs");
        Assert.Equal(("/pretrained.pt", "pretrained checkpoint", 32), (plan.Init, plan.InitFrom, plan.GlobalBatch));
        Assert.Equal(32, (int?)plan.Options["batch_size"]);
        Assert.Equal(2, (int?)plan.Options["ranks_per_worker"]); // the two ranks of batch 16 the stage started with
        Assert.Equal(status.ResumedFrom, (string?)plan.Options["resume"]);
        Assert.False((bool?)plan.Options["reset_data_offset"]);
        Assert.False((bool?)plan.Options["reset_optimizer"]);
    }

    [Fact]
    public void Hyperparameters_that_are_not_training_arguments_are_left_out()
    {
        var schedule = TwoStages();
        schedule.Schedule.Stages[0].Hyperparameters["dropout"] = "0.1";
        Assert.Null(StageOptions.Plan(schedule, 0, workers: 1, "/runs").Options["dropout"]);
        Assert.IsType<JsonObject>(StageOptions.Plan(schedule, 0, workers: 1, "/runs").Options);
    }

    [Theory]
    [InlineData(2, "1", null)] // as many workers as it started on
    [InlineData(4, "1", null)] // more workers than it started on: batch 8 each, as one rank each
    [InlineData(1, "2", null)] // accum_freq > 1: one process trains the whole batch
    [InlineData(1, "1", 2)]
    public void A_stage_on_fewer_workers_than_it_started_on_computes_its_ranks_on_each(int workers, string accumFreq, int? ranksPerWorker)
    {
        var schedule = TwoStages();
        schedule.Schedule.Stages[0].Hyperparameters["accum_freq"] = accumFreq;
        schedule.Stages[0].Attempt = 1;
        schedule.Stages[0].GlobalBatch = 32;
        var options = StageOptions.Plan(schedule, 0, workers, "/runs").Options;
        Assert.Equal(32 / workers, (int?)options["batch_size"]);
        Assert.Equal(ranksPerWorker, (int?)options["ranks_per_worker"]);
    }
}
