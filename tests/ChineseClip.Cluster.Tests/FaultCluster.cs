using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ChineseClip.Cluster.Tests;

/// <summary>The cluster as plain processes (redis-server or the embedded Garnet, the coordinator, workers, a
/// preprocessor), started from their build folders so that a test can kill, stop, continue and restart each one.
/// Every process it ever started is remembered, for the orphan check at the end.</summary>
public sealed class FaultCluster : IDisposable
{
    public const int SigKill = 9, SigTerm = 15, SigCont = 18, SigStop = 19;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int SendSignal(int pid, int signal);

    readonly Dictionary<string, Func<ProcessStartInfo>> _recipes = [];
    readonly Dictionary<string, Process> _running = [];
    readonly List<ProcessTree.Seen> _started = [];
    readonly HashSet<int> _stoppedOnPurpose = [];
    readonly object _lock = new();

    public string Root { get; }
    public string Runs => Path.Combine(Root, "runs");
    public int RedisPort { get; } = ServiceProcesses.FreePort();
    public int GrpcPort { get; } = ServiceProcesses.FreePort();
    public string CoordinatorAddress => $"http://127.0.0.1:{GrpcPort}";
    public string Redis { get; }
    public IReadOnlyList<string> Workers { get; }

    /// <param name="redis">"redis" (redis-server, append-only file) or "garnet" (its log and checkpoints), as the AppHost runs them.</param>
    public FaultCluster(string root, string redis, int workers, TimeSpan ringTimeout, int pairsPerShard)
    {
        Root = root;
        Redis = redis;
        string data = Path.Combine(root, $".{redis}");
        Directory.CreateDirectory(data);
        string redisAddress = $"127.0.0.1:{RedisPort}";
        _recipes["redis"] = () => redis == "garnet"
            ? Recipe(ServiceProcesses.Executable("ChineseClip.Garnet"), [], "--port", $"{RedisPort}", "--bind", "127.0.0.1", "--memory", "256m", "--index", "16m",
                "--aof", "--aof-size-limit", "64m", "--checkpointdir", data, "--recover", "--device-type", "RandomAccess")
            : Recipe("redis-server", [], "--port", $"{RedisPort}", "--bind", "127.0.0.1", "--appendonly", "yes", "--save", "", "--dir", data);
        int httpPort = ServiceProcesses.FreePort();
        _recipes["coordinator"] = () => Recipe(ServiceProcesses.Executable("ChineseClip.Coordinator"),
            [("ConnectionStrings__redis", redisAddress), ("Kestrel__Endpoints__grpc__Url", CoordinatorAddress),
             ("Kestrel__Endpoints__http__Url", $"http://127.0.0.1:{httpPort}"), ("Coordinator__RunsDirectory", Runs)]);
        var names = new List<string>();
        for (int i = 0; i < workers; i++)
        {
            string name = $"worker-{i}";
            names.Add(name);
            _recipes[name] = () => Recipe(ServiceProcesses.Executable("ChineseClip.Worker"),
                [("Worker__Coordinator", CoordinatorAddress), ("Worker__Name", name), ("Worker__Threads", "1"),
                 ("Worker__RingTimeoutSeconds", $"{ringTimeout.TotalSeconds}"), ("Worker__PairsPerShard", $"{pairsPerShard}"),
                 ("ConnectionStrings__redis", redisAddress)]);
        }
        Workers = names;
        // A short lease, so that the task of a killed preprocessor is redelivered within seconds.
        _recipes["preprocessor-0"] = () => Recipe(ServiceProcesses.Executable("ChineseClip.Preprocessor"),
            [("ConnectionStrings__redis", redisAddress), ("Preprocessing__LeaseSeconds", "4"), ("Preprocessing__ReapSeconds", "1")]);
    }

    static ProcessStartInfo Recipe(string file, (string, string)[] environment, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Services read appsettings.json from their working directory.
        if (Path.IsPathRooted(file)) start.WorkingDirectory = Path.GetDirectoryName(file)!;
        foreach (var (key, value) in environment) start.Environment[key] = value;
        foreach (string a in args) start.ArgumentList.Add(a);
        return start;
    }

    /// <summary>Each line a service writes, with the service's name, as it comes (on the process's reader thread): a
    /// test can act at the moment a service reaches a point of its work.</summary>
    public event Action<string, string>? Output;

    public void StartAll()
    {
        foreach (string name in _recipes.Keys) Start(name);
    }

    public int Start(string name)
    {
        var process = Process.Start(_recipes[name]())!;
        string log = Path.Combine(ClusterFixture.LogDirectory, $"fault-{name}.log");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_lock) File.AppendAllText(log, e.Data + "\n"); Output?.Invoke(name, e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_lock) File.AppendAllText(log, e.Data + "\n"); Output?.Invoke(name, e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_lock)
        {
            _running[name] = process;
            if (ProcessTree.Snapshot(process.Id) is { } seen) _started.Add(seen);
        }
        return process.Id;
    }

    public int Pid(string name)
    {
        lock (_lock) return _running[name].Id;
    }

    /// <summary>Sends <paramref name="signal"/> to the named service's current process.</summary>
    public int Signal(string name, int signal)
    {
        int pid = Pid(name);
        if (SendSignal(pid, signal) != 0) throw new InvalidOperationException($"kill -{signal} {pid} ({name}): errno {Marshal.GetLastPInvokeError()}");
        return pid;
    }

    /// <summary>SIGKILL, and waits until the process is gone.</summary>
    public int Kill(string name)
    {
        Process process;
        lock (_lock)
        {
            process = _running[name];
            _stoppedOnPurpose.Add(process.Id);
        }
        Signal(name, SigKill);
        process.WaitForExit();
        return process.Id;
    }

    /// <summary>SIGTERM (a graceful stop), and waits up to a minute for the process to end.</summary>
    public bool Terminate(string name)
    {
        Process process;
        lock (_lock)
        {
            process = _running[name];
            _stoppedOnPurpose.Add(process.Id);
        }
        if (process.HasExited) return true;
        Signal(name, SigTerm);
        return process.WaitForExit(TimeSpan.FromMinutes(1));
    }

    /// <summary>The services whose current process ended without this cluster stopping it (a crash), each with its exit
    /// code and the end of its log: nothing restarts them, so a fault series must not wait for them.</summary>
    public IReadOnlyList<string> Crashed()
    {
        lock (_lock)
            return _running.Where(kv => kv.Value.HasExited && !_stoppedOnPurpose.Contains(kv.Value.Id)).Select(kv =>
            {
                string log = Path.Combine(ClusterFixture.LogDirectory, $"fault-{kv.Key}.log");
                var tail = File.Exists(log) ? File.ReadLines(log).Where(l => !l.TrimStart().StartsWith("at ", StringComparison.Ordinal)).TakeLast(6) : [];
                return $"{kv.Key} (pid {kv.Value.Id}) ended by itself with exit code {kv.Value.ExitCode}; the end of {log}:\n  " + string.Join("\n  ", tail);
            }).ToList();
    }

    /// <summary>Every process this cluster started that still runs (or is stopped): after <see cref="StopAll"/>, none.</summary>
    public IReadOnlyList<ProcessTree.Seen> StillRunning()
    {
        lock (_lock) return _started.Where(p => p.Alive).ToList();
    }

    /// <summary>Graceful stops, services first and Redis last, as a cluster is taken down.</summary>
    public void StopAll()
    {
        foreach (string name in _recipes.Keys.Where(n => n != "redis").Append("redis"))
        {
            try { Signal(name, SigCont); } catch (InvalidOperationException) { }
            if (!Terminate(name)) Kill(name);
        }
    }

    public void Dispose()
    {
        lock (_lock)
            foreach (var p in _running.Values)
            {
                try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                p.Dispose();
            }
    }
}
