// cnclip bench: benchmarks that print one JSON line (speed goals are checked with these, never with timed tests).
using System.CommandLine;

namespace ChineseClip.Cli.Commands;

public static class BenchCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var command = new Command("bench", "Benchmarks that print one JSON line.");
        command.Subcommands.Add(BenchTrainStepCommand.Create(io));
        command.Subcommands.Add(BenchGemmCommand.Create(io));
        command.Subcommands.Add(BenchPreprocessCommand.Create(io));
        command.Subcommands.Add(BenchAllReduceCommand.Create(io));
        command.Subcommands.Add(BenchGpuCommand.Create(io));
        command.Subcommands.Add(BenchEncodeCommand.Create(io));
        command.Subcommands.Add(BenchSearchCommand.Create(io));
        command.Subcommands.Add(BenchServeCommand.Create(io, environment));
        return command;
    }
}
