// cnclip watch ID: follow a schedule until it ends, a progress line per update; the exit code says how it ended.
using System.CommandLine;
using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts.Coordinator;
using Grpc.Core;

namespace ChineseClip.Cli.Commands;

public static class WatchCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var id = new Argument<string>("ID") { Description = "the schedule id that submit printed" };
        var coordinator = CoordinatorClient.AddressOption();
        var command = new Command("watch", "Follow a schedule until it ends: exit 0 when it succeeded, 1 when it failed or was cancelled.")
        {
            id, coordinator,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string scheduleId = r.GetValue(id)!;
            var target = CoordinatorTarget.Resolve(r.GetValue(coordinator), environment);
            return CoordinatorClient.Call(target, scheduleId, client => Follow(io, client, scheduleId));
        }));
        return command;
    }

    // Prints a stage's full line when its state changes and a progress bar per update while it runs (never the same
    // line twice in a row); returns the exit code of the final state.
    static int Follow(CliIO io, Coordinator.CoordinatorClient client, string scheduleId)
    {
        using var call = client.WatchSchedule(new GetScheduleRequest { Id = scheduleId });
        var states = new Dictionary<int, RunState>();
        var lastProgress = new Dictionary<int, string>();
        ScheduleStatus? last = null;
        while (call.ResponseStream.MoveNext(CancellationToken.None).GetAwaiter().GetResult())
        {
            ScheduleStatus status = call.ResponseStream.Current;
            if (last is null || last.State != status.State) io.Out.WriteLine($"schedule {status.Id}: {StatusFormat.State(status.State)}");
            for (int i = 0; i < status.Stages.Count; i++)
            {
                StageStatus stage = status.Stages[i];
                if (!states.TryGetValue(i, out RunState before) || before != stage.State)
                {
                    states[i] = stage.State;
                    io.Out.WriteLine("  " + StatusFormat.StageLine(status, i));
                }
                else if (stage.State == RunState.Running && stage.Progress is not null)
                {
                    string line = "  " + StatusFormat.ProgressLine(status, i);
                    if (lastProgress.GetValueOrDefault(i) != line) io.Out.WriteLine(line);
                    lastProgress[i] = line;
                }
            }
            io.Out.Flush();
            last = status;
        }
        if (last is null || !StatusFormat.IsFinal(last.State))
        {
            throw new CliException($"the coordinator ended the watch of '{scheduleId}' before the schedule finished "
                + $"(last state: {(last is null ? "none" : StatusFormat.State(last.State))})", ExitCodes.Failure);
        }
        if (last.State == RunState.Succeeded) return ExitCodes.Success;
        string why = last.Error.Length > 0 ? $": {last.Error}" : "";
        throw new CliException($"schedule {last.Id} {StatusFormat.State(last.State)}{why}", ExitCodes.Failure);
    }
}
