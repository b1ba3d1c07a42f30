// cnclip deploy: the search service serves a stage schedule's best checkpoint. The service asks the coordinator for the
// schedule's status (StageStatus.best_checkpoint of the stage, default the last), embeds the collection again in the
// background and swaps it in; this command follows the deploy until it ends.
using System.CommandLine;
using System.Text.Json;
using ChineseClip.Cli.Search;

namespace ChineseClip.Cli.Commands;

public static class DeployCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var schedule = new Argument<string>("SCHEDULE_ID") { Description = "the schedule whose best checkpoint to serve" };
        var stage = new Option<string?>("--stage") { Description = "the stage (default: the schedule's last)" };
        var collection = new Option<string>("--collection") { Description = "the collection to serve it in", DefaultValueFactory = _ => "default" };
        var search = new Option<string?>("--search")
        {
            Description = $"the search service (default: ${SearchServiceClient.AddressVariable}, else {SearchServiceClient.DefaultAddress}); $CNCLIP_TOKEN, when set, is sent as its token",
        };
        var command = new Command("deploy", "Serve a stage schedule's best checkpoint in a search collection (re-embedded, then swapped in).")
        {
            schedule, stage, collection, search,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string name = r.GetValue(collection)!;
            using var client = new SearchServiceClient(r.GetValue(search), environment);
            var started = client.StartDeployAsync(name, r.GetValue(schedule)!, r.GetValue(stage)).GetAwaiter().GetResult();
            io.Error.WriteLine($"deploying schedule {started.GetProperty("schedule").GetString()} stage {started.GetProperty("stage").GetString()} " +
                $"({started.GetProperty("checkpoint").GetString()}) to {name} at {client.Address}");
            var served = client.WaitForDeployAsync(name).GetAwaiter().GetResult();
            var deploy = served.GetProperty("deploy");
            if (deploy.GetProperty("state").GetString() == "succeeded")
            {
                io.Out.WriteLine($"{name}: {served.GetProperty("count").GetInt32()} images served from {deploy.GetProperty("checkpoint").GetString()} " +
                    $"(version {served.GetProperty("version").GetInt32()})");
                return ExitCodes.Success;
            }
            io.Error.WriteLine($"cnclip: error: the deploy to {name} failed: {deploy.GetProperty("error").GetString()}");
            return ExitCodes.Failure;
        }));
        return command;
    }
}
