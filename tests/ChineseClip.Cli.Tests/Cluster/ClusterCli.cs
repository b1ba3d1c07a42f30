using ChineseClip.Contracts.Coordinator;
using Google.Protobuf.WellKnownTypes;

namespace ChineseClip.Cli.Tests.Cluster;

/// <summary>Runs the cluster verbs with a clean environment (the process's CNCLIP_* variables never leak into tests),
/// and builds the canned statuses the tests share.</summary>
public static class ClusterCli
{
    public static CliRunner.Result Run(params string[] args) => CliRunner.RunWithEnvironment(new Dictionary<string, string>(), args);

    public static Timestamp At(int hour, int minute, int second) =>
        Timestamp.FromDateTime(new DateTime(2025, 3, 1, hour, minute, second, DateTimeKind.Utc));

    /// <summary>A three-stage schedule: stage 1 done from a pretrained checkpoint, stage 2 running from stage 1's best,
    /// stage 3 waiting.</summary>
    public static ScheduleStatus ThreeStages(RunState state = RunState.Running) => new()
    {
        Id = "s-7",
        State = state,
        Submitted = At(9, 0, 0),
        Updated = At(9, 30, 5),
        Schedule = new Schedule
        {
            Name = "demo",
            Stages =
            {
                new Stage { Name = "muge", Init = StageInit.InitPretrained },
                new Stage { Name = "flickr", Init = StageInit.InitBestOfPrevious },
                new Stage { Name = "private", Init = StageInit.InitLastOfPrevious },
            },
        },
        Stages =
        {
            new StageStatus
            {
                Name = "muge", State = RunState.Succeeded, Members = { "w1", "w2" },
                InitCheckpoint = "/models/vit-b-16.pt", InitFrom = "pretrained",
                BestCheckpoint = "/runs/s-7/0/checkpoints/best.pt",
                Progress = new Progress
                {
                    Epoch = 3, Epochs = 3, Step = 300, Steps = 300, Loss = 0.41234, SamplesPerSecond = 20.04,
                    T2IRecall = { 40, 70.25, 80 }, MeanRecall = 63.33,
                },
            },
            new StageStatus
            {
                Name = "flickr", State = RunState.Running, Members = { "w1", "w2" }, Attempt = 2,
                InitCheckpoint = "/runs/s-7/0/checkpoints/best.pt", InitFrom = "best of stage 1 muge",
                Progress = new Progress { Epoch = 2, Epochs = 5, Step = 120, Steps = 480, Loss = 0.523, SamplesPerSecond = 12.5, EtaSeconds = 65 },
            },
            new StageStatus { Name = "private", State = RunState.Pending },
        },
    };
}
