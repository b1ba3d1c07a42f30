using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cli.Tests.Cluster;

public class ScheduleFileTests
{
    const string Yaml = """
        name: three stages
        stages:
          - name: muge
            train_data: /data/muge
            val_data: /data/muge
            arch: ViT-B-16@RoBERTa-wwm-ext-base-chinese
            vocab: /models/vocab.txt
            init: pretrained
            pretrained: /models/clip_cn_vit-b-16.pt
            hyperparameters:
              batch_size: 128
              lr: 5e-5
              warmup: 100
              freeze_vision: false
          - name: flickr
            trainData: /data/flickr
            init: best-of-previous
            workers: 2
          - name: private
            train_data: /data/private
            init: LAST_OF_PREVIOUS
            val_data:
        """;

    [Fact]
    public void Yaml_reads_friendly_init_names_and_keeps_numbers_as_text_where_the_message_wants_text()
    {
        Schedule s = ScheduleFile.Parse(Yaml, yaml: true, "plan.yaml");
        Assert.Equal("three stages", s.Name);
        Assert.Equal(["muge", "flickr", "private"], s.Stages.Select(t => t.Name));
        Assert.Equal([StageInit.InitPretrained, StageInit.InitBestOfPrevious, StageInit.InitLastOfPrevious], s.Stages.Select(t => t.Init));
        Assert.Equal("/data/flickr", s.Stages[1].TrainData);
        Assert.Equal(2, s.Stages[1].Workers);
        Assert.Equal("", s.Stages[2].ValData);
        var h = s.Stages[0].Hyperparameters;
        Assert.Equal("128", h["batch_size"]);
        Assert.Equal("5e-5", h["lr"]);
        Assert.Equal("false", h["freeze_vision"]);
        Assert.Equal("/models/clip_cn_vit-b-16.pt", s.Stages[0].Pretrained);
    }

    [Fact]
    public void Json_takes_proto_and_json_field_names_enum_names_and_numeric_hyperparameters()
    {
        const string json = """
            {"name": "two", "stages": [
              {"name": "a", "train_data": "/d/a", "init": "INIT_SCRATCH", "hyperparameters": {"lr": 5e-5, "max_epochs": "3"}},
              {"name": "b", "trainData": "/d/b", "valData": "/d/b", "init": "best-of-previous", "workers": "3"}
            ]}
            """;
        Schedule s = ScheduleFile.Parse(json, yaml: false, "plan.json");
        Assert.Equal(StageInit.InitScratch, s.Stages[0].Init);
        Assert.Equal("5e-5", s.Stages[0].Hyperparameters["lr"]);
        Assert.Equal("3", s.Stages[0].Hyperparameters["max_epochs"]);
        Assert.Equal("/d/b", s.Stages[1].TrainData);
        Assert.Equal("/d/b", s.Stages[1].ValData);
        Assert.Equal(StageInit.InitBestOfPrevious, s.Stages[1].Init);
        Assert.Equal(3, s.Stages[1].Workers);
    }

    [Fact]
    public void A_bad_value_in_yaml_is_named_by_its_path_and_line()
    {
        string bad = Yaml.Replace("init: best-of-previous", "init: best");
        var e = Assert.Throws<CliException>(() => ScheduleFile.Parse(bad, yaml: true, "plan.yaml"));
        int line = Array.FindIndex(bad.Split('\n'), l => l.Contains("init: best")) + 1;
        Assert.StartsWith($"plan.yaml:{line}: stages[1].init: unknown value 'best' (expected one of default, scratch, pretrained, best-of-previous, last-of-previous", e.Message);
    }

    [Theory]
    [InlineData("""{"name": "x", "stages": [{"name": "a", "train_dta": "/d"}]}""", "plan.json: stages[0].train_dta: unknown field (known: name, train_data, ")]
    [InlineData("""{"name": "x", "stages": [{"name": "a", "workers": "two"}]}""", "plan.json: stages[0].workers: expected a whole number, got 'two'")]
    [InlineData("""{"name": "x", "stages": {"name": "a"}}""", "plan.json: stages: expected a list, got a mapping")]
    [InlineData("""{"name": "x", "stages": [{"hyperparameters": {"lr": [1]}}]}""", "plan.json: stages[0].hyperparameters.lr: expected text, got a list")]
    [InlineData("""{"name": "x", "stages": []}""", "plan.json: stages: a schedule needs at least one stage")]
    [InlineData("""{"name": "x", "stages": [{"train_data": "/a", "trainData": "/b"}]}""", "plan.json: stages[0].trainData: given twice")]
    [InlineData("[1, 2]", "plan.json: expected a mapping of fields (name, stages), got a list")]
    [InlineData("{\"name\": \"x\",\n \"stages\": [}", "plan.json:2: invalid JSON: ")]
    public void A_bad_json_file_is_one_line_naming_the_field(string json, string expectedStart)
    {
        var e = Assert.Throws<CliException>(() => ScheduleFile.Parse(json, yaml: false, "plan.json"));
        Assert.StartsWith(expectedStart, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(ExitCodes.BadInput, e.ExitCode);
    }

    [Theory]
    [InlineData("name: x\nstages:\n  - name: a\n   train_data: /d\n", "plan.yaml:4: invalid YAML: ")]
    [InlineData("name: x\nstages:\n  - name: a\n    hyperparameters: 3\n", "plan.yaml:4: stages[0].hyperparameters: expected a mapping of names to values, got '3'")]
    [InlineData("", "plan.yaml: expected a mapping of fields (name, stages), got nothing")]
    public void A_bad_yaml_file_names_the_line(string yaml, string expectedStart)
    {
        var e = Assert.Throws<CliException>(() => ScheduleFile.Parse(yaml, yaml: true, "plan.yaml"));
        Assert.StartsWith(expectedStart, e.Message);
    }

    [Fact]
    public void Friendly_names_drop_the_common_prefix()
    {
        var init = Stage.Descriptor.FindFieldByNumber(Stage.InitFieldNumber).EnumType;
        Assert.Equal(["default", "scratch", "pretrained", "best-of-previous", "last-of-previous"], init.Values.Select(ScheduleFile.FriendlyName));
    }

    [Fact]
    public void A_yaml_schedule_nested_thousands_deep_is_one_line_not_a_stack_overflow()
    {
        string deep = new string('[', 10_000) + new string(']', 10_000);
        var e = Assert.Throws<CliException>(() => ScheduleFile.Parse(deep, yaml: true, "deep.yaml"));
        Assert.StartsWith("deep.yaml:1: ", e.Message);
        Assert.Contains("nested deeper than", e.Message);
    }

    [Fact]
    public void A_yaml_alias_bomb_is_refused_before_it_is_expanded()
    {
        // 9^6 leaves once expanded: refused by the value budget, not by what the expansion turns into.
        var yaml = new System.Text.StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for (int i = 1; i < 6; i++) yaml.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9))}]\n");
        var e = Assert.Throws<CliException>(() => ScheduleFile.Parse(yaml.ToString(), yaml: true, "bomb.yaml"));
        Assert.StartsWith("bomb.yaml", e.Message);
        Assert.Contains("values", e.Message);
    }
}
