// cnclip status [ID]: the cluster's workers and schedules, or one schedule's stages (progress, recall, init lineage).
using System.CommandLine;
using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cli.Commands;

public static class StatusCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var id = new Argument<string?>("ID") { Description = "a schedule id (default: list workers and schedules)", Arity = ArgumentArity.ZeroOrOne };
        var coordinator = CoordinatorClient.AddressOption();
        var json = new Option<bool>("--json") { Description = "print the coordinator's answer as proto JSON" };
        var command = new Command("status", "Show the cluster's workers and schedules, or one schedule's stages.")
        {
            id, coordinator, json,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string? scheduleId = r.GetValue(id);
            var target = CoordinatorTarget.Resolve(r.GetValue(coordinator), environment);
            return CoordinatorClient.Call(target, scheduleId, client =>
            {
                if (scheduleId is not null)
                {
                    ScheduleStatus status = client.GetSchedule(new GetScheduleRequest { Id = scheduleId });
                    if (r.GetValue(json)) io.Out.WriteLine(StatusFormat.Json.Format(status));
                    else foreach (string line in StatusFormat.Detail(status)) io.Out.WriteLine(line);
                    return ExitCodes.Success;
                }
                var workers = client.ListWorkers(new ListWorkersRequest()).Workers;
                var schedules = client.ListSchedules(new ListSchedulesRequest()).Schedules;
                if (r.GetValue(json))
                {
                    io.Out.WriteLine($"{{\"workers\": [{string.Join(", ", workers.Select(m => StatusFormat.Json.Format(m)))}], "
                        + $"\"schedules\": [{string.Join(", ", schedules.Select(m => StatusFormat.Json.Format(m)))}]}}");
                }
                else
                {
                    foreach (string line in StatusFormat.Overview(workers, schedules)) io.Out.WriteLine(line);
                }
                return ExitCodes.Success;
            });
        }));
        return command;
    }
}
