// The workers connected now. A worker is a member while its Join stream is open; commands reach it through its channel.
using System.Collections.Concurrent;
using System.Threading.Channels;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class WorkerConnection(WorkerInfo info)
{
    public WorkerInfo Info { get; } = info;
    public Channel<WorkerCommand> Commands { get; } = Channel.CreateUnbounded<WorkerCommand>();
    /// <summary>The run this worker is training, or null when free.</summary>
    public string? RunId { get; set; }
    public DateTime Joined { get; } = DateTime.UtcNow;
}

public sealed class WorkerRegistry
{
    readonly ConcurrentDictionary<string, WorkerConnection> _workers = new();

    /// <summary>Raised with the worker and the run it was in (null when free) when its stream ends.</summary>
    public event Action<WorkerConnection>? Left;
    public event Action<WorkerConnection>? Joined;

    public WorkerConnection Join(WorkerInfo info)
    {
        var connection = new WorkerConnection(info) { RunId = string.IsNullOrEmpty(info.BusyWith) ? null : info.BusyWith };
        if (_workers.TryGetValue(info.Name, out var old)) old.Commands.Writer.TryComplete(); // a reconnect replaces the old stream
        _workers[info.Name] = connection;
        Joined?.Invoke(connection);
        return connection;
    }

    public void Leave(WorkerConnection connection)
    {
        if (_workers.TryRemove(KeyValuePair.Create(connection.Info.Name, connection))) Left?.Invoke(connection);
    }

    public WorkerConnection? Get(string name) => _workers.TryGetValue(name, out var c) ? c : null;

    public IReadOnlyList<WorkerConnection> All() => _workers.Values.OrderBy(w => w.Info.Name, StringComparer.Ordinal).ToList();

    public IReadOnlyList<WorkerConnection> Free() => All().Where(w => w.RunId is null).ToList();

    public IReadOnlyList<WorkerConnection> In(string runId) => All().Where(w => w.RunId == runId).ToList();

    /// <summary>Tells the workers of a run to stop it.</summary>
    public void CancelRun(string runId)
    {
        foreach (var w in In(runId)) w.Commands.Writer.TryWrite(new WorkerCommand { CancelStage = new CancelStage { RunId = runId } });
    }
}
