using System.Diagnostics;

namespace ChineseClip.Cluster.Tests;

/// <summary>A shell in a pseudo-terminal (a detached tmux session on a private tmux server), into which a test types
/// commands and presses Ctrl+C as a user does: the terminal, not the test, delivers SIGINT to the foreground process
/// group. The pane's output is appended to <see cref="LogFile"/>.</summary>
public sealed class TerminalSession : IDisposable
{
    readonly string _server = $"cnclip-test-{Guid.NewGuid():N}";
    public string LogFile { get; }
    /// <summary>The shell's process id: what the commands typed into it run under.</summary>
    public int ShellPid { get; }

    public TerminalSession(string workingDirectory, string logFile)
    {
        LogFile = logFile;
        File.WriteAllText(logFile, "");
        Tmux("-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", "200", "-y", "50", "-c", workingDirectory, "bash --norc --noprofile");
        Tmux("pipe-pane", "-t", "main", $"cat >> '{logFile}'");
        ShellPid = int.Parse(Tmux("display-message", "-p", "-t", "main", "#{pane_pid}").Trim());
    }

    /// <summary>Types <paramref name="commandLine"/> and Enter.</summary>
    /// <summary>Types a command line and Enter, and returns once the shell has started it: tmux delivers the keys
    /// asynchronously, so right after send-keys the shell may have no child yet (CI once read that as "the command
    /// ended" 0.5 s after typing).</summary>
    public void Type(string commandLine)
    {
        Tmux("send-keys", "-t", "main", "-l", commandLine);
        Tmux("send-keys", "-t", "main", "Enter");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (Foreground().Count == 0)
        {
            if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"the shell did not start '{commandLine}' within 30 s");
            Thread.Sleep(100);
        }
    }

    public void PressCtrlC() => Tmux("send-keys", "-t", "main", "C-c");

    /// <summary>The shell's child processes (what the last command line started, while it runs).</summary>
    public IReadOnlyList<int> Foreground() => ProcessTree.Children(ShellPid);

    /// <summary>What the running command started: its processes, and those that watch one of them from outside the
    /// tree (Aspire's DCP runs detached with --monitor APPHOST_PID), with everything under them.</summary>
    public List<ProcessTree.Seen> Started()
    {
        var pids = ProcessTree.Descendants(Foreground()).ToHashSet();
        while (true)
        {
            var monitors = ProcessTree.All().Select(p => p.Pid).Where(p => !pids.Contains(p)
                && pids.Any(watched => ProcessTree.CommandLine(p).Contains($"--monitor {watched} ", StringComparison.Ordinal))).ToList();
            if (monitors.Count == 0) break;
            pids.UnionWith(ProcessTree.Descendants(monitors));
        }
        return pids.Select(ProcessTree.Snapshot).OfType<ProcessTree.Seen>().ToList();
    }

    public string Log()
    {
        using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    string Tmux(params string[] args)
    {
        var start = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-L");
        start.ArgumentList.Add(_server);
        foreach (string a in args) start.ArgumentList.Add(a);
        using var tmux = Process.Start(start) ?? throw new InvalidOperationException("tmux did not start");
        string output = tmux.StandardOutput.ReadToEnd(), error = tmux.StandardError.ReadToEnd();
        tmux.WaitForExit();
        if (tmux.ExitCode != 0) throw new InvalidOperationException($"tmux {string.Join(' ', args)}: exit {tmux.ExitCode}: {error}");
        return output;
    }

    public void Dispose()
    {
        // A test that failed midway may leave its command running: Ctrl+C, a while to stop (the next test may need the
        // same ports), then the end of the shell (SIGHUP to whatever is left).
        try
        {
            if (Foreground().Count > 0)
            {
                var running = Started();
                PressCtrlC();
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
                while (running.Any(p => p.Alive) && DateTime.UtcNow < deadline) Thread.Sleep(250);
            }
            Tmux("kill-server");
        }
        catch (InvalidOperationException) { }
    }
}
