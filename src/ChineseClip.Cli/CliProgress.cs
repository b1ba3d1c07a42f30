// Progress bars for the long verbs (train, extract-features, index build, convert-private-data, downloads), drawn with
// Spectre.Console on stderr only when stderr is an interactive terminal; otherwise (CI, logs, tests) nothing is written,
// so the verbs' outputs stay as they are.
using Spectre.Console;

namespace ChineseClip.Cli;

/// <summary>One report: how much is done, optionally a new total, and a detail shown after the count (loss, rate).</summary>
public readonly record struct CliProgressUpdate(double Done, double? Total = null, string? Detail = null);

public sealed class CliProgress
{
    readonly IAnsiConsole? _console;

    /// <summary>Draws on <paramref name="console"/>, or nowhere when it is null.</summary>
    internal CliProgress(IAnsiConsole? console) => _console = console;

    /// <summary>Bars on the process's stderr when the command writes to it and it is a terminal; quiet otherwise.</summary>
    public static CliProgress For(CliIO io) =>
        new(ReferenceEquals(io.Error, Console.Error) && !Console.IsErrorRedirected
            ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) })
            : null);

    /// <summary>Runs <paramref name="body"/> with one bar named <paramref name="name"/> that its reports move; a total of 0
    /// (not known yet) shows a running count until a report names the total.</summary>
    public T Run<T>(string name, double total, Func<IProgress<CliProgressUpdate>, T> body)
    {
        if (_console is null) return body(new Bar(null, name));
        return _console.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(name), maxValue: Math.Max(total, 1));
                task.IsIndeterminate = total <= 0;
                T result = body(new Bar(task, name));
                task.StopTask();
                return result;
            });
    }

    /// <summary>Runs <paramref name="body"/> with one bar (a body without a result).</summary>
    public void Run(string name, double total, Action<IProgress<CliProgressUpdate>> body) =>
        Run(name, total, p =>
        {
            body(p);
            return 0;
        });

    /// <summary>A library's own progress type turned into this bar's reports, synchronously (unlike
    /// <see cref="Progress{T}"/>, which posts them to the thread pool and may report after the bar has ended).</summary>
    public static IProgress<TReport> Select<TReport>(IProgress<CliProgressUpdate> bar, Func<TReport, CliProgressUpdate> map) =>
        new Mapped<TReport>(bar, map);

    sealed class Mapped<TReport>(IProgress<CliProgressUpdate> bar, Func<TReport, CliProgressUpdate> map) : IProgress<TReport>
    {
        public void Report(TReport value) => bar.Report(map(value));
    }

    sealed class Bar(ProgressTask? task, string name) : IProgress<CliProgressUpdate>
    {
        public void Report(CliProgressUpdate value)
        {
            if (task is null) return;
            if (value.Total is double total)
            {
                task.MaxValue = Math.Max(total, 1);
                task.IsIndeterminate = total <= 0;
            }
            if (task.IsIndeterminate) task.MaxValue = Math.Max(task.MaxValue, value.Done + 1);
            task.Value = Math.Min(value.Done, task.MaxValue);
            string count = task.IsIndeterminate ? $"{value.Done:0}" : $"{value.Done:0}/{task.MaxValue:0}";
            task.Description = Markup.Escape(value.Detail is null ? $"{name} {count}" : $"{name} {count} {value.Detail}");
        }
    }
}
