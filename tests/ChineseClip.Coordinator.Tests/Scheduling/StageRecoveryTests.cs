using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Scheduling;

namespace ChineseClip.Coordinator.Tests.Scheduling;

public class StageRecoveryTests
{
    static StageStatus Stage(int attempt, int grown = 0, int forgiven = 0, string checkpoint = "", int checkpointAttempt = 0) => new()
    {
        Name = "s", Attempt = attempt, Grown = grown, Forgiven = forgiven, LatestCheckpoint = checkpoint, LatestCheckpointAttempt = checkpointAttempt,
    };

    [Fact]
    public void Attempts_that_fail_without_a_checkpoint_give_up_at_the_limit()
    {
        Assert.False(StageRecovery.GivesUp(Stage(attempt: 4), maxAttempts: 5));
        Assert.True(StageRecovery.GivesUp(Stage(attempt: 5), maxAttempts: 5));
        // An older attempt's checkpoint is not progress of this one.
        Assert.True(StageRecovery.GivesUp(Stage(attempt: 5, checkpoint: "ckpt/step_10.pt", checkpointAttempt: 4), maxAttempts: 5));
    }

    [Fact]
    public void An_attempt_that_wrote_a_checkpoint_never_gives_up_and_forgiven_or_grown_reforms_do_not_count()
    {
        // The long fault series: the fifth failure of one stage, each after progress.
        Assert.False(StageRecovery.GivesUp(Stage(attempt: 5, checkpoint: "ckpt/step_580.pt", checkpointAttempt: 5), maxAttempts: 5));
        Assert.True(StageRecovery.MadeProgress(Stage(attempt: 3, checkpoint: "c.pt", checkpointAttempt: 3)));
        Assert.False(StageRecovery.GivesUp(Stage(attempt: 9, forgiven: 4, grown: 1), maxAttempts: 5));
        Assert.True(StageRecovery.GivesUp(Stage(attempt: 10, forgiven: 4, grown: 1), maxAttempts: 5));
    }
}
