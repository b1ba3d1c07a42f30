// cnclip cancel ID: ask the coordinator to stop a schedule (its running stage is cancelled on every worker).
using System.CommandLine;
using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cli.Commands;

public static class CancelCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var id = new Argument<string>("ID") { Description = "the schedule id that submit printed" };
        var coordinator = CoordinatorClient.AddressOption();
        var command = new Command("cancel", "Cancel a schedule on the cluster's coordinator.") { id, coordinator };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string scheduleId = r.GetValue(id)!;
            var target = CoordinatorTarget.Resolve(r.GetValue(coordinator), environment);
            return CoordinatorClient.Call(target, scheduleId, client =>
            {
                ScheduleStatus status = client.CancelSchedule(new GetScheduleRequest { Id = scheduleId });
                io.Out.WriteLine($"schedule {status.Id}: {StatusFormat.State(status.State)}");
                return ExitCodes.Success;
            });
        }));
        return command;
    }
}
