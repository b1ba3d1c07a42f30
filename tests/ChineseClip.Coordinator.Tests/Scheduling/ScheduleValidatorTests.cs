using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Scheduling;

namespace ChineseClip.Coordinator.Tests.Scheduling;

public sealed class ScheduleValidatorTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("cnclip-validator").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    Stage ValidStage(string name)
    {
        string data = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        string vocab = Path.Combine(_dir, "vocab.txt");
        File.WriteAllText(vocab, "[PAD]\n");
        return new Stage { Name = name, TrainData = data, Arch = "RN50@RBT3-chinese", Vocab = vocab };
    }

    Schedule Valid()
    {
        var schedule = new Schedule { Name = "s" };
        schedule.Stages.Add(ValidStage("muge"));
        schedule.Stages.Add(ValidStage("flickr"));
        return schedule;
    }

    [Fact]
    public void A_valid_schedule_has_no_problem()
    {
        var schedule = Valid();
        schedule.Stages[1].Hyperparameters["lr"] = "1e-5";
        schedule.Stages[1].Init = StageInit.InitLastOfPrevious;
        Assert.Null(ScheduleValidator.FirstProblem(schedule));
    }

    public static TheoryData<string, string> Problems => new()
    {
        { "no stages", "stages: a schedule needs at least one stage" },
        { "unnamed", "stages[1].name: missing" },
        { "same name", "stages[1].name: 'muge' is used by an earlier stage" },
        { "no train data", "stages[1].train_data: missing" },
        { "missing train data", "stages[1].train_data: folder '/nowhere' not found" },
        { "missing val data", "stages[1].val_data: folder '/nowhere' not found" },
        { "no arch", "stages[1].arch: missing" },
        { "missing arch file", "stages[1].arch: file '/nowhere.json' not found" },
        { "missing vocab", "stages[1].vocab: file '/nowhere.txt' not found" },
        { "negative workers", "stages[1].workers: must not be negative" },
        { "pretrained without file", "stages[1].pretrained: init is pretrained but no checkpoint is given" },
        { "pretrained not found", "stages[1].pretrained: file '/nowhere.pt' not found" },
        { "pretrained without init", "stages[1].pretrained: given, but init is InitDefault" },
        { "first from previous", "stages[0].init: the first stage has no previous stage" },
        { "unknown init", "stages[1].init: unknown value 42" },
        { "stage argument", "stages[1].hyperparameters.train_data: set by the stage itself, not a hyperparameter" },
        { "unknown argument", "stages[1].hyperparameters.dropout: not a training argument" },
        { "bad number", "stages[1].hyperparameters.lr: 'fast' is not a number" },
    };

    [Theory]
    [MemberData(nameof(Problems))]
    public void The_first_problem_names_its_field(string change, string expected)
    {
        var schedule = Valid();
        var s = schedule.Stages[1];
        switch (change)
        {
            case "no stages": schedule.Stages.Clear(); break;
            case "unnamed": s.Name = " "; break;
            case "same name": s.Name = "muge"; break;
            case "no train data": s.TrainData = ""; break;
            case "missing train data": s.TrainData = "/nowhere"; break;
            case "missing val data": s.ValData = "/nowhere"; break;
            case "no arch": s.Arch = ""; break;
            case "missing arch file": s.Arch = "/nowhere.json"; break;
            case "missing vocab": s.Vocab = "/nowhere.txt"; break;
            case "negative workers": s.Workers = -1; break;
            case "pretrained without file": s.Init = StageInit.InitPretrained; break;
            case "pretrained not found": s.Init = StageInit.InitPretrained; s.Pretrained = "/nowhere.pt"; break;
            case "pretrained without init": s.Pretrained = "/nowhere.pt"; break;
            case "first from previous": schedule.Stages[0].Init = StageInit.InitBestOfPrevious; break;
            case "unknown init": s.Init = (StageInit)42; break;
            case "stage argument": s.Hyperparameters["train_data"] = "/elsewhere"; break;
            case "unknown argument": s.Hyperparameters["dropout"] = "0.1"; break;
            case "bad number": s.Hyperparameters["lr"] = "fast"; break;
            default: throw new ArgumentException(change);
        }
        Assert.Equal(expected, ScheduleValidator.FirstProblem(schedule));
    }

    [Fact]
    public void A_missing_schedule_is_a_problem()
    {
        Assert.Equal("schedule: missing", ScheduleValidator.FirstProblem(null));
    }
}
