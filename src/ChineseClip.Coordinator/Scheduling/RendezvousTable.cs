// Where the ranks of a stage run meet: each gives its ring address and waits until all have.
using System.Collections.Concurrent;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class RendezvousTable
{
    sealed class Meeting(int worldSize)
    {
        public readonly string?[] Addresses = new string?[worldSize];
        public readonly TaskCompletionSource<string[]> Complete = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    readonly ConcurrentDictionary<string, Meeting> _meetings = new();

    public void Open(string runId, int worldSize) => _meetings[runId] = new Meeting(worldSize);

    public void Close(string runId, string why)
    {
        if (_meetings.TryRemove(runId, out var m)) m.Complete.TrySetException(new InvalidOperationException(why));
    }

    /// <summary>Registers a rank's address; completes with every address in rank order once all ranks have come.</summary>
    public Task<string[]> Arrive(string runId, int rank, string address)
    {
        if (!_meetings.TryGetValue(runId, out var m)) throw new KeyNotFoundException($"run {runId} is not starting (cancelled or finished?)");
        if (rank < 0 || rank >= m.Addresses.Length) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside run {runId}'s {m.Addresses.Length} ranks");
        lock (m)
        {
            m.Addresses[rank] = address;
            if (m.Addresses.All(a => a is not null)) m.Complete.TrySetResult(m.Addresses!);
        }
        return m.Complete.Task;
    }
}
