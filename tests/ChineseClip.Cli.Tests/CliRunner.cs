namespace ChineseClip.Cli.Tests;

/// <summary>Runs the real cnclip command tree in-process with captured streams.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Error)
    {
        public string[] OutLines => Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static Result Run(params string[] args) => RunWithInput("", args);

    /// <summary>Runs with the given environment variables in place of the process's (which tests must not change).</summary>
    public static Result RunWithEnvironment(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        RunCore("", args, name => environment.GetValueOrDefault(name));

    public static Result RunWithInput(string stdin, params string[] args) => RunCore(stdin, args, Environment.GetEnvironmentVariable);

    static Result RunCore(string stdin, string[] args, Func<string, string?> environment)
    {
        var output = new StringWriter { NewLine = "\n" };
        var error = new StringWriter { NewLine = "\n" };
        int code = CliApp.Run(args, new CliIO(new StringReader(stdin), output, error), environment);
        return new Result(code, output.ToString(), error.ToString());
    }

    /// <summary>Runs cnclip as its own process (for runs that must not share torch's process-wide state with other tests).</summary>
    public static Result RunProcess(params string[] args) =>
        RunProcess(ChineseClip.Cli.Launching.LocalRanks.SelfStartInfo(), new Dictionary<string, string>(), args);

    /// <summary>Runs <paramref name="start"/> (a cnclip) with <paramref name="environment"/> added to this process's variables.</summary>
    public static Result RunProcess(System.Diagnostics.ProcessStartInfo start, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        foreach (var (name, value) in environment) start.Environment[name] = value;
        foreach (string a in args) start.ArgumentList.Add(a);
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        using var process = System.Diagnostics.Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5))) process.Kill(entireProcessTree: true);
        process.WaitForExit();
        return new Result(process.ExitCode, output, error.Result);
    }
}
