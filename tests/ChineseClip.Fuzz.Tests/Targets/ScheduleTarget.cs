using System.Text;
using System.Text.Json.Nodes;
using ChineseClip.Cli;
using ChineseClip.Cli.Cluster;
using ChineseClip.Coordinator.Scheduling;
using ChineseClip.Data.Demo;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>Stage schedules (`cnclip submit`, the demo's demo-schedule.yaml as the seed) in YAML and JSON, mutated as
/// configs are, read by the CLI and then checked by the coordinator's validator as a submission is. The CLI refuses
/// naming the file (and line); the coordinator refuses naming the field, which the CLI prints as its error line.</summary>
public sealed class ScheduleTarget : FuzzTarget
{
    public override string Name => "schedules";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        DemoDataGenerator.Generate(Work, seed: 6, scale: 0.1);
        var seed = Yaml.Read(File.ReadAllText(Path.Combine(Work, "demo-schedule.yaml")))!;
        int n = 0;
        FuzzCase Case(string what, string text, bool yaml) => new($"{(yaml ? "yaml" : "json")}: {what}", Encoding.UTF8.GetBytes(text),
            Path.Combine(Work, $"case-{n++}.{(yaml ? "yaml" : "json")}"));

        foreach (bool yaml in new[] { true, false })
        {
            for (int i = 0; i < 40; i++)
            {
                var (what, tree) = Mutate.Json(seed, random);
                yield return Case(what, yaml ? Yaml.Write(tree) : tree?.ToJsonString() ?? "null", yaml);
            }
            byte[] text = Encoding.UTF8.GetBytes(yaml ? Yaml.Write(seed) : seed.ToJsonString());
            for (int i = 0; i < 15; i++)
            {
                var (what, bytes) = Mutate.Bytes(text, random);
                yield return new FuzzCase($"{(yaml ? "yaml" : "json")}: {what}", bytes, Path.Combine(Work, $"case-{n++}.{(yaml ? "yaml" : "json")}"));
            }
        }
        string Stage(string extra) => $"name: s\nstages:\n  - name: a\n    train_data: {Work}/stage1-muge\n    arch: {Work}/tiny-arch.json\n    vocab: {Work}/vocab.txt\n{extra}";
        yield return Case("workers 1e400", Stage("    workers: 1e400\n"), yaml: true);
        yield return Case("workers 2^31", Stage("    workers: 2147483648\n"), yaml: true);
        yield return Case("batch_size 2^40", Stage("    hyperparameters: {batch_size: 1099511627776}\n"), yaml: true);
        yield return Case("lr 1e400", Stage("    hyperparameters: {lr: 1e400}\n"), yaml: true);
        yield return Case("init sideways", Stage("    init: sideways\n"), yaml: true);
        yield return Case("init 7", Stage("    init: 7\n"), yaml: true);
        yield return Case("stages a mapping", "name: s\nstages: {a: 1}\n", yaml: true);
        yield return Case("nested 10,000 deep", Mutate.Nested(10_000), yaml: true);
        yield return Case("nested 10,000 deep", Mutate.Nested(10_000), yaml: false);
        yield return Case("a duplicate key", Stage("    arch: again\n"), yaml: true);
        yield return Case("an alias bomb", TrainConfigTarget.AliasBomb(), yaml: true);
        yield return Case("a tab indent", Stage("\tinit: scratch\n"), yaml: true);
        yield return Case("empty", "", yaml: true);
        yield return Case("empty", "", yaml: false);
    }

    public override void Run(FuzzCase c)
    {
        File.WriteAllBytes(c.Source!, c.Input);
        var schedule = ScheduleFile.Load(c.Source!);
        // What the coordinator answers a submission with (InvalidArgument, the problem as its detail), as the CLI shows it.
        if (ScheduleValidator.FirstProblem(schedule) is string problem)
        {
            if (!problem.StartsWith("stages", StringComparison.Ordinal) && !problem.StartsWith("schedule", StringComparison.Ordinal))
                throw new FuzzBugException($"the coordinator's refusal does not name the field: {problem}");
            throw new CliException($"{c.Source}: {problem}");
        }
    }

    public override bool IsRefusal(Exception e) => e is CliException;
}
