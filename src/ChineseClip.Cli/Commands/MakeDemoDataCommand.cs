// cnclip make-demo-data: three small synthetic datasets (one per stage of the plan) in the official layout.
using System.CommandLine;
using ChineseClip.Data.Demo;

namespace ChineseClip.Cli.Commands;

public static class MakeDemoDataCommand
{
    public static Command Create(CliIO io)
    {
        var output = new Option<DirectoryInfo>("--output") { Description = "folder to write stage1-muge/, stage2-flickr/, stage3-private/ into", Required = true };
        var seed = new Option<int>("--seed") { Description = "same seed, same bytes", DefaultValueFactory = _ => 0 };
        var scale = new Option<double>("--scale") { Description = "multiplies the image counts (train 600/400/300, valid and test 100 each)", DefaultValueFactory = _ => 1.0 };
        var command = new Command("make-demo-data", "Write synthetic demo datasets (coloured shapes with Chinese captions) in the official layout.")
        {
            output, seed, scale,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            double s = r.GetValue(scale);
            if (!(s > 0) || s > 100) throw new CliException($"--scale {s}: must be above 0 and at most 100");
            foreach (var summary in DemoDataGenerator.Generate(r.GetValue(output)!.FullName, r.GetValue(seed), s))
                io.Error.WriteLine($"{summary.Dataset}/{summary.Split}: {summary.Images} images, {summary.Texts} texts");
            return ExitCodes.Success;
        }));
        return command;
    }
}
