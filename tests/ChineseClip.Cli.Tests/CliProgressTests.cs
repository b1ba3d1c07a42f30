using ChineseClip.Cli.Commands;
using ChineseClip.Training;
using Spectre.Console.Testing;

namespace ChineseClip.Cli.Tests;

public sealed class CliProgressTests
{
    [Fact]
    public void AnInteractiveConsoleShowsTheBarWithItsCountAndDetail()
    {
        var console = new TestConsole().Interactive();
        console.Profile.Width = 160;
        int result = new CliProgress(console).Run("images", 10, bar =>
        {
            bar.Report(new(4));
            bar.Report(new(10, Detail: "12.5/s"));
            return 42;
        });
        Assert.Equal(42, result);
        Assert.Contains("images 10/10 12.5/s", console.Output);
        Assert.Contains("100%", console.Output);
    }

    [Fact]
    public void TrainingStepsShowStepOfStepsLossRateAndEta()
    {
        var console = new TestConsole().Interactive();
        console.Profile.Width = 200;
        new CliProgress(console).Run("train", 0, bar =>
            bar.Report(TrainCommand.Step(new TrainProgress(2, 3, 7, 12, 0.12345, 1e-5, 33.3, 0, 0, 0, EtaSeconds: 75))));
        Assert.Contains("train 7/12 epoch 2/3 loss 0.1235 33.3 samples/s ETA 0:01:15", console.Output);
    }

    [Fact]
    public void AnUnknownTotalShowsARunningCount()
    {
        var console = new TestConsole().Interactive();
        console.Profile.Width = 160;
        new CliProgress(console).Run("texts", 0, bar => bar.Report(new(5, Detail: "bytes")));
        Assert.Contains("texts 5 bytes", console.Output);
        Assert.DoesNotContain("texts 5/", console.Output);
    }

    [Fact]
    public void StreamsThatAreNotTheTerminalGetNothing()
    {
        var error = new StringWriter();
        var io = new CliIO(new StringReader(""), new StringWriter(), error);
        int reports = 0;
        var bar = CliProgress.For(io);
        int result = bar.Run("images", 3, p =>
        {
            var mapped = CliProgress.Select<int>(p, n =>
            {
                reports++;
                return new(n);
            });
            for (int i = 1; i <= 3; i++) mapped.Report(i);
            return 7;
        });
        Assert.Equal(7, result);
        Assert.Equal(3, reports);
        Assert.Equal("", error.ToString());
    }
}
