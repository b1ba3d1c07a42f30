// The cnclip command tree, and the one place that turns failures into exit codes and one-line messages.
using System.CommandLine;
using ChineseClip.Cli.Commands;
using ChineseClip.Model;

namespace ChineseClip.Cli;

/// <summary>The streams a command reads and writes (the console, or strings in tests).</summary>
public sealed record CliIO(TextReader In, TextWriter Out, TextWriter Error);

public static class ExitCodes
{
    public const int Success = 0;
    /// <summary>Something went wrong that is not the user's input (a bug, the machine).</summary>
    public const int Failure = 1;
    /// <summary>Bad input: options, files, records. The message names what is wrong.</summary>
    public const int BadInput = 2;
}

/// <summary>A user-facing error: its message is printed as is, on one line, and the command ends with the exit code
/// (bad input unless told otherwise).</summary>
public sealed class CliException(string message, int exitCode = ExitCodes.BadInput) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

public static class CliApp
{
    public static int Run(string[] args, CliIO io) => Run(args, io, Environment.GetEnvironmentVariable);

    /// <summary>The command tree with the environment variables it reads (CNCLIP_COORDINATOR, CNCLIP_TOKEN) taken from
    /// <paramref name="environment"/>, so that tests need not change the process's environment.</summary>
    internal static int Run(string[] args, CliIO io, Func<string, string?> environment)
    {
        var root = new RootCommand("cnclip: fine-tune and use Chinese-CLIP (ViT/ResNet image tower + Chinese RoBERTa text tower).");
        root.Subcommands.Add(TokenizeCommand.Create(io));
        root.Subcommands.Add(ConvertPrivateDataCommand.Create(io));
        root.Subcommands.Add(DownloadCommands.Model(io));
        root.Subcommands.Add(DownloadCommands.Dataset(io));
        root.Subcommands.Add(MakeDemoDataCommand.Create(io));
        root.Subcommands.Add(BuildLmdbCommand.Create(io));
        root.Subcommands.Add(TrainCommand.Create(io));
        root.Subcommands.Add(ExtractFeaturesCommand.Create(io));
        root.Subcommands.Add(PredictCommand.Create(io));
        root.Subcommands.Add(EvaluateCommand.Create(io));
        root.Subcommands.Add(ZeroShotCommand.Create(io));
        root.Subcommands.Add(ConvertModelCommand.Create(io));
        root.Subcommands.Add(ExportOnnxCommand.Create(io));
        root.Subcommands.Add(IndexCommand.Create(io));
        root.Subcommands.Add(SearchCommand.Create(io));
        root.Subcommands.Add(BenchCommand.Create(io, environment));
        root.Subcommands.Add(SubmitCommand.Create(io, environment));
        root.Subcommands.Add(StatusCommand.Create(io, environment));
        root.Subcommands.Add(ReportCommand.Create(io, environment));
        root.Subcommands.Add(WatchCommand.Create(io, environment));
        root.Subcommands.Add(CancelCommand.Create(io, environment));
        root.Subcommands.Add(DeployCommand.Create(io, environment));

        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            io.Error.WriteLine($"cnclip: error: {parsed.Errors[0].Message} (see --help)");
            return ExitCodes.BadInput;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = io.Out, Error = io.Error, EnableDefaultExceptionHandler = false });
    }

    /// <summary>Runs a command body; known input errors become one line on stderr and exit code 2, never a trace.</summary>
    public static int Guard(CliIO io, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsInputError(e))
        {
            io.Error.WriteLine($"cnclip: error: {OneLine(e.Message)}");
            return (e as CliException)?.ExitCode ?? ExitCodes.BadInput;
        }
        catch (Exception e)
        {
            // A wrapper (TypeInitializationException, TargetInvocationException, AggregateException) says nothing of its
            // cause, so the chain of causes goes on the same line.
            var causes = new List<string>();
            for (Exception? x = e; x is not null; x = x.InnerException) causes.Add($"{x.GetType().Name}: {OneLine(x.Message)}");
            io.Error.WriteLine($"cnclip: internal error: {string.Join(" <- ", causes)}");
            return ExitCodes.Failure;
        }
    }

    static bool IsInputError(Exception e) =>
        e is CliException or ArchitectureException or FileNotFoundException or DirectoryNotFoundException
            or UnauthorizedAccessException or InvalidDataException or FormatException or Training.DeviceUnavailableException
        || e.GetType().Namespace?.StartsWith("ChineseClip.Model", StringComparison.Ordinal) == true
        || e.GetType().Namespace?.StartsWith("ChineseClip.Onnx", StringComparison.Ordinal) == true;

    static string OneLine(string message) => message.ReplaceLineEndings(" | ").Trim();
}
