// The two backends the queue must work on, each started by its fixture on a free loopback port: a real redis-server
// process (Debian's redis-server 7) and Garnet embedded in the test process.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Garnet;
using StackExchange.Redis;

namespace ChineseClip.Preprocessing.Tests;

public abstract class QueueServer : IDisposable
{
    ConnectionMultiplexer? _connection, _blocking;

    public int Port { get; } = FreePort();
    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>The shared connection and a second one for blocking takes (as the worker has them).</summary>
    public IConnectionMultiplexer Connection => _connection ??= Connect();
    public IConnectionMultiplexer Blocking => _blocking ??= Connect();

    public RedisTaskQueue Queue(PreprocessingOptions options) => new(Connection, Blocking, options);

    ConnectionMultiplexer Connect() => ConnectionMultiplexer.Connect($"{ConnectionString},connectTimeout=5000");

    /// <summary>Polls PING until the server answers, at most 15 s.</summary>
    protected void WaitUntilAnswering(Func<string> diagnostics)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = ConnectionMultiplexer.Connect($"{ConnectionString},connectTimeout=1000,abortConnect=true");
                probe.GetDatabase().Ping();
                return;
            }
            catch (RedisConnectionException) when (clock.Elapsed < TimeSpan.FromSeconds(15))
            {
                Thread.Sleep(100);
            }
            catch (RedisConnectionException e)
            {
                throw new InvalidOperationException($"{GetType().Name} on port {Port} did not answer PING in 15 s: {diagnostics()}", e);
            }
        }
    }

    static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public virtual void Dispose()
    {
        _connection?.Dispose();
        _blocking?.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class RedisServer : QueueServer
{
    const string Executable = "/usr/bin/redis-server";
    readonly Process _process;
    readonly System.Text.StringBuilder _log = new();

    public RedisServer()
    {
        if (!File.Exists(Executable))
            throw new InvalidOperationException($"{Executable} not found: apt-get install redis-server (.ci/run installs it)");
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
            start.ArgumentList.Add(a);
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        WaitUntilAnswering(() => { lock (_log) return _log.ToString(); });
    }

    public override void Dispose()
    {
        base.Dispose();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
        _process.Dispose();
    }
}

public sealed class EmbeddedGarnet : QueueServer
{
    readonly GarnetServer _server;

    public EmbeddedGarnet()
    {
        // Small memory settings: the defaults reserve gigabytes a test does not need.
        _server = new GarnetServer(["--port", Port.ToString(), "--bind", "127.0.0.1", "--memory", "64m", "--index", "8m"]);
        _server.Start();
        WaitUntilAnswering(() => "embedded Garnet");
    }

    public override void Dispose()
    {
        base.Dispose();
        _server.Dispose();
    }
}
