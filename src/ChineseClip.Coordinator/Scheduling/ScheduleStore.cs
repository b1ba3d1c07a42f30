// Schedules and their progress, kept in memory for answers and in Redis for survival: every change is written
// (SET of the whole status, small) before it is announced, so a restarted coordinator continues from what it last said.
using ChineseClip.Contracts.Coordinator;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using StackExchange.Redis;

namespace ChineseClip.Coordinator.Scheduling;

public sealed class ScheduleStore
{
    const string IndexKey = "cnclip:schedules";
    static string Key(string id) => $"cnclip:schedule:{id}";

    readonly IConnectionMultiplexer _redis;
    readonly ILogger<ScheduleStore> _log;
    readonly Dictionary<string, ScheduleStatus> _schedules = new();
    readonly object _lock = new();
    TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    bool _loaded;

    public ScheduleStore(IConnectionMultiplexer redis, ILogger<ScheduleStore> log) => (_redis, _log) = (redis, log);

    /// <summary>Completes at the next change of any schedule.</summary>
    public Task Changed
    {
        get { lock (_lock) return _changed.Task; }
    }

    public async Task LoadAsync()
    {
        var db = _redis.GetDatabase();
        var ids = await db.SortedSetRangeByRankAsync(IndexKey);
        int loaded = 0;
        foreach (var id in ids)
        {
            var bytes = (byte[]?)await db.StringGetAsync(Key(id!));
            if (bytes is null) continue;
            var status = ScheduleStatus.Parser.ParseFrom(bytes);
            lock (_lock) _schedules[status.Id] = status;
            loaded++;
        }
        lock (_lock) _loaded = true;
        if (loaded > 0) _log.LogInformation("Loaded {Count} schedule(s) from Redis", loaded);
    }

    public bool Loaded
    {
        get { lock (_lock) return _loaded; }
    }

    public static string NewId() => $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>Adds a schedule under <paramref name="id"/> (from <see cref="NewId"/>) with the traceparent of its span.</summary>
    public async Task<ScheduleStatus> AddAsync(string id, Schedule schedule, string traceparent)
    {
        var now = Timestamp.FromDateTime(DateTime.UtcNow);
        var status = new ScheduleStatus
        {
            Id = id, Schedule = schedule, State = RunState.Pending, Submitted = now, Updated = now, Traceparent = traceparent,
        };
        status.Stages.AddRange(schedule.Stages.Select(s => new StageStatus { Name = s.Name, State = RunState.Pending }));
        await _redis.GetDatabase().SortedSetAddAsync(IndexKey, status.Id, now.Seconds);
        await SaveAsync(status);
        return status.Clone();
    }

    public ScheduleStatus? Get(string id)
    {
        lock (_lock) return _schedules.TryGetValue(id, out var s) ? s.Clone() : null;
    }

    public IReadOnlyList<ScheduleStatus> All()
    {
        lock (_lock) return _schedules.Values.OrderBy(s => s.Submitted).Select(s => s.Clone()).ToList();
    }

    /// <summary>Applies a change to a schedule (under the store's lock), persists it, and announces it.
    /// Returns the new status, or null when there is no such schedule or <paramref name="change"/> returned false.</summary>
    public async Task<ScheduleStatus?> UpdateAsync(string id, Func<ScheduleStatus, bool> change)
    {
        ScheduleStatus copy;
        lock (_lock)
        {
            if (!_schedules.TryGetValue(id, out var status)) return null;
            var next = status.Clone();
            if (!change(next)) return null;
            next.Updated = Timestamp.FromDateTime(DateTime.UtcNow);
            copy = next;
        }
        await SaveAsync(copy);
        return copy.Clone();
    }

    async Task SaveAsync(ScheduleStatus status)
    {
        await _redis.GetDatabase().StringSetAsync(Key(status.Id), status.ToByteArray());
        TaskCompletionSource changed;
        lock (_lock)
        {
            // A later update may have landed while this one was being written: keep the newest.
            if (!_schedules.TryGetValue(status.Id, out var current) || current.Updated <= status.Updated) _schedules[status.Id] = status.Clone();
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        changed.TrySetResult();
    }
}
