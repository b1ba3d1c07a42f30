using System.Diagnostics;
using ChineseClip.Cli;

namespace ChineseClip.Fuzz.Tests;

public enum Verdict { Accepted, Refused, Bug }

public sealed record FuzzResult(FuzzCase Case, Verdict Verdict, string Detail);

public static class Fuzz
{
    /// <summary>The seed of every corpus: the same cases on every run.</summary>
    public const int Seed = 20261204;
    public static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Runs every case of <paramref name="target"/>, prints one summary line (and each bug), and fails when any
    /// case is a bug; at least <paramref name="minimumCases"/> cases must have run.</summary>
    public static IReadOnlyList<FuzzResult> AssertNoBugs(FuzzTarget target, int minimumCases = 20)
    {
        using (target)
        {
            var watch = Stopwatch.StartNew();
            var results = target.Cases(new Random(Seed)).Select(c => RunOne(target, c)).ToList();
            var bugs = results.Where(r => r.Verdict == Verdict.Bug).ToList();
            Console.WriteLine($"fuzz {target.Name}: {results.Count} cases, {results.Count(r => r.Verdict == Verdict.Accepted)} accepted, "
                + $"{results.Count(r => r.Verdict == Verdict.Refused)} refused, {bugs.Count} bugs, {watch.Elapsed.TotalSeconds:F1} s");
            foreach (var bug in bugs) Console.WriteLine($"  bug: {bug.Case.Description}: {bug.Detail}");
            Assert.True(results.Count >= minimumCases, $"{target.Name}: only {results.Count} cases");
            Assert.True(bugs.Count == 0, $"{target.Name}: {bugs.Count} of {results.Count} cases are bugs:\n"
                + string.Join("\n", bugs.Take(15).Select(b => $"{b.Case.Description}: {b.Detail}")));
            return results;
        }
    }

    public static FuzzResult RunOne(FuzzTarget target, FuzzCase c)
    {
        Exception? thrown = null;
        var run = Task.Factory.StartNew(() =>
        {
            try { target.Run(c); }
            catch (Exception e) { thrown = e; }
        }, TaskCreationOptions.LongRunning);
        if (!run.Wait(CaseTimeout)) return new FuzzResult(c, Verdict.Bug, $"no answer within {CaseTimeout.TotalSeconds:F0} s (a hang)");
        if (thrown is null) return new FuzzResult(c, Verdict.Accepted, "");
        if (thrown is FuzzBugException) return new FuzzResult(c, Verdict.Bug, thrown.Message);
        string what = $"{thrown.GetType().Name}: {thrown.Message}";
        if (!target.IsRefusal(thrown)) return new FuzzResult(c, Verdict.Bug, $"not a typed refusal: {what}\n{thrown.StackTrace}");
        if (thrown.Message.Trim().Length == 0) return new FuzzResult(c, Verdict.Bug, $"no message: {what}");
        if (c.Source is { } source && !thrown.Message.Contains(source, StringComparison.Ordinal))
            return new FuzzResult(c, Verdict.Bug, $"does not name {source}: {what}");
        if (!target.ReportedByCli)
            return thrown.Message.Contains('\n') ? new FuzzResult(c, Verdict.Bug, $"more than one line: {what}") : new FuzzResult(c, Verdict.Refused, thrown.Message);
        // The CLI's error path: one line, exit code 2.
        var error = new StringWriter();
        int code = CliApp.Guard(new CliIO(TextReader.Null, TextWriter.Null, error), () => throw thrown);
        string line = error.ToString().TrimEnd('\n');
        if (code != ExitCodes.BadInput || line.Contains('\n') || !line.StartsWith("cnclip: error: ", StringComparison.Ordinal))
            return new FuzzResult(c, Verdict.Bug, $"the CLI reports it with exit code {code}: {line}");
        return new FuzzResult(c, Verdict.Refused, thrown.Message);
    }
}
