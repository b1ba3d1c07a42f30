// cnclip submit FILE: send a stage schedule (proto JSON or YAML) to the cluster's coordinator; prints the new id.
using System.CommandLine;
using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cli.Commands;

public static class SubmitCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var file = new Argument<FileInfo>("FILE")
        {
            Description = "the schedule: {name, stages: [{name, train_data, val_data, arch, vocab, init, pretrained, hyperparameters, workers}]} "
                + "as proto JSON or YAML (.yaml/.yml), with paths as the workers see them; init: scratch, pretrained, best-of-previous or last-of-previous",
        };
        var coordinator = CoordinatorClient.AddressOption();
        var command = new Command("submit", "Submit a schedule of training stages to the cluster's coordinator; prints its id.")
        {
            file, coordinator,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            Schedule schedule = ScheduleFile.Load(r.GetValue(file)!.FullName);
            var target = CoordinatorTarget.Resolve(r.GetValue(coordinator), environment);
            return CoordinatorClient.Call(target, null, client =>
            {
                ScheduleStatus status = client.SubmitSchedule(new SubmitScheduleRequest { Schedule = schedule });
                io.Out.WriteLine(status.Id);
                string stages = string.Join(", ", schedule.Stages.Select(s => $"{s.Name} ({StatusFormat.InitAsked(s.Init)})"));
                io.Out.WriteLine($"\"{schedule.Name}\": {schedule.Stages.Count} stage(s): {stages}; {StatusFormat.State(status.State)}");
                io.Out.WriteLine($"follow it with: cnclip watch {status.Id}");
                return ExitCodes.Success;
            });
        }));
        return command;
    }
}
