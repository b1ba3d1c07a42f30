// The torchrun of this project: runs N copies of cnclip on this machine, one per rank, that meet through a fresh
// rendezvous folder. Rank 0 talks to the console; the other ranks write logs. When one rank fails, the others are
// stopped and the failure is reported with the end of that rank's output.
using System.Diagnostics;

namespace ChineseClip.Cli.Launching;

public static class LocalRanks
{
    /// <summary>Where the cnclip executable is: this process, or (in tests, whose host is another program) the apphost
    /// next to cnclip.dll.</summary>
    public static ProcessStartInfo SelfStartInfo()
    {
        string? process = Environment.ProcessPath;
        if (process is not null && Path.GetFileNameWithoutExtension(process) == "cnclip") return new ProcessStartInfo(process);
        string apphost = Path.Combine(AppContext.BaseDirectory, "cnclip");
        if (File.Exists(apphost)) return new ProcessStartInfo(apphost);
        var dotnet = new ProcessStartInfo("dotnet");
        dotnet.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cnclip.dll"));
        return dotnet;
    }

    /// <summary>Runs one cnclip per rank with <paramref name="argumentsFor"/>(rank, rendezvousDir) and waits for all.
    /// Returns 0 when every rank succeeded, else the exit code of the first rank that failed.</summary>
    public static int Run(int ranks, Func<int, string, IEnumerable<string>> argumentsFor, CliIO io, string logDirectory)
    {
        string rendezvous = Path.Combine(Path.GetTempPath(), "cnclip-rendezvous-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(logDirectory);
        var processes = new List<(int Rank, Process Process, string Log, StreamWriter? Writer)>();
        var consoleLock = new object();
        try
        {
            for (int rank = 0; rank < ranks; rank++)
            {
                var start = SelfStartInfo();
                foreach (string a in argumentsFor(rank, rendezvous)) start.ArgumentList.Add(a);
                start.RedirectStandardOutput = start.RedirectStandardError = true;
                start.UseShellExecute = false;
                string log = Path.Combine(logDirectory, $"rank{rank}.log");
                var writer = new StreamWriter(log, append: false) { AutoFlush = true };
                var process = new Process { StartInfo = start };
                int r = rank;
                process.OutputDataReceived += (_, e) => Forward(e.Data, r == 0 ? io.Out : null);
                process.ErrorDataReceived += (_, e) => Forward(e.Data, r == 0 ? io.Error : null);
                void Forward(string? line, TextWriter? console)
                {
                    if (line is null) return;
                    lock (consoleLock)
                    {
                        writer.WriteLine(line);
                        console?.WriteLine(line);
                    }
                }
                process.Start();
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                processes.Add((rank, process, log, writer));
            }

            // Wait for every rank; the first failure stops the rest (they would only time out waiting for it).
            var pending = processes.ToList();
            int failure = 0;
            while (pending.Count > 0)
            {
                int index = Task.WaitAny(pending.Select(p => p.Process.WaitForExitAsync()).ToArray());
                var done = pending[index];
                pending.RemoveAt(index);
                done.Process.WaitForExit(); // flush the redirected streams
                if (done.Process.ExitCode != 0 && failure == 0)
                {
                    failure = done.Process.ExitCode;
                    lock (consoleLock)
                    {
                        done.Writer?.Flush();
                        string last = File.ReadLines(done.Log).Where(l => l.Trim().Length > 0).LastOrDefault() ?? "(no output)";
                        io.Error.WriteLine($"cnclip: error: rank {done.Rank} exited with code {done.Process.ExitCode}: {last} (log: {done.Log})");
                    }
                    foreach (var other in pending) Kill(other.Process);
                }
            }
            return failure;
        }
        finally
        {
            foreach (var p in processes)
            {
                Kill(p.Process);
                p.Process.Dispose();
                lock (consoleLock) p.Writer?.Dispose();
            }
            if (Directory.Exists(rendezvous)) Directory.Delete(rendezvous, recursive: true);
        }
    }

    static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { } // already gone
    }
}
