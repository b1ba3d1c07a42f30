// The reliable queue on Redis commands that Redis 7 and Garnet 2.2 both serve: lists (BLMOVE, LPUSH/RPUSH, LREM,
// LRANGE), hashes, a sorted set, and WATCH + MULTI/EXEC (StackExchange.Redis transactions with conditions). No streams,
// no Lua.
//
// Keys under the prefix P:
//   P:pending     list of task ids; consumers BLMOVE from its right end into P:processing
//   P:processing  list of task ids being worked on
//   P:leases      sorted set, task id -> lease deadline (Unix ms): the index the reaper scans
//   P:dead        list of dead-lettered task ids
//   P:stats       hash: done, retried
//   P:task:{id}   hash: json, attempts (failed deliveries), error (the last), owner (lease token), deadline
//
// Every state change of a task is one MULTI/EXEC guarded (WATCH) by P:task:{id}: a renewal, completion or failure
// holds only while the owner token is still the one that consumer was given, and the reaper's redelivery only while
// owner and deadline are the ones it saw expire. So a consumer that lost its lease cannot complete or fail the task
// a second time, and a renewal that lands first makes the reaper's transaction abort.
// Deadlines are the clients' clocks (Unix ms): consumers on different machines need roughly synchronised clocks.
using System.Globalization;
using StackExchange.Redis;

namespace ChineseClip.Preprocessing;

public sealed class RedisTaskQueue : ITaskQueue
{
    const string Json = "json", Attempts = "attempts", Error = "error", Owner = "owner", Deadline = "deadline";

    readonly IDatabase _db, _blocking;
    readonly PreprocessingOptions _options;
    readonly RedisKey _pending, _processing, _leases, _dead, _stats;
    readonly string _prefix;

    /// <param name="connection">The shared, multiplexed connection.</param>
    /// <param name="blockingConnection">A connection of this consumer's own for BLMOVE: a blocking command holds up
    /// every other command pipelined on its connection.</param>
    public RedisTaskQueue(IConnectionMultiplexer connection, IConnectionMultiplexer blockingConnection, PreprocessingOptions options)
    {
        _options = options.Validated();
        _db = connection.GetDatabase();
        _blocking = blockingConnection.GetDatabase();
        _prefix = options.Queue;
        _pending = _prefix + ":pending";
        _processing = _prefix + ":processing";
        _leases = _prefix + ":leases";
        _dead = _prefix + ":dead";
        _stats = _prefix + ":stats";
    }

    RedisKey TaskKey(string id) => $"{_prefix}:task:{id}";
    static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    static string Str(long v) => v.ToString(CultureInfo.InvariantCulture);

    public async Task<bool> EnqueueAsync(PreprocessTask task)
    {
        var key = TaskKey(task.Id);
        for (int attempt = 1; ; attempt++)
        {
            var tran = _db.CreateTransaction();
            tran.AddCondition(Condition.KeyNotExists(key));
            _ = tran.HashSetAsync(key, [new(Json, task.ToJson()), new(Attempts, "0")]);
            _ = tran.ListLeftPushAsync(_pending, task.Id);
            if (await tran.ExecuteAsync()) return true;
            // Not executed: the task is there already, or the transaction was aborted without it (seen once right as
            // the client reconnected after a stall: a stage then waited for a shard that nobody had been asked for).
            if (await _db.KeyExistsAsync(key) || attempt == 5) return false;
        }
    }

    public async Task<TaskLease?> TakeAsync(TimeSpan wait)
    {
        long seconds = Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds));
        var moved = await _blocking.ExecuteAsync("BLMOVE", _pending, _processing, "RIGHT", "LEFT", Str(seconds));
        if (moved.IsNull) return null;
        string id = (string)moved!;
        var key = TaskKey(id);
        string token = Guid.NewGuid().ToString("N");
        long deadline = NowMs() + (long)_options.Lease.TotalMilliseconds;

        var tran = _db.CreateTransaction();
        tran.AddCondition(Condition.KeyExists(key));
        tran.AddCondition(Condition.HashNotExists(key, Owner));
        _ = tran.HashSetAsync(key, [new(Owner, token), new(Deadline, Str(deadline))]);
        _ = tran.SortedSetAddAsync(_leases, id, deadline);
        var fields = tran.HashGetAllAsync(key);
        if (!await tran.ExecuteAsync())
        {
            // A stray id: its task is gone (completed) or already leased through another copy of the id.
            await _db.ListRemoveAsync(_processing, id, 1);
            return null;
        }
        var hash = (await fields).ToDictionary(e => (string)e.Name!, e => e.Value);
        int failures = (int)hash[Attempts];
        PreprocessTask task;
        try
        {
            task = PreprocessTask.FromJson((string)hash[Json]!, $"queue task {id}");
        }
        catch (FormatException e)
        {
            await EndDeliveryAsync(id, token, Str(deadline), failures, e.Message);
            return null;
        }
        return new TaskLease(task, token, failures, DateTimeOffset.FromUnixTimeMilliseconds(deadline));
    }

    public async Task<bool> RenewAsync(TaskLease lease)
    {
        var key = TaskKey(lease.Task.Id);
        long deadline = NowMs() + (long)_options.Lease.TotalMilliseconds;
        var tran = _db.CreateTransaction();
        tran.AddCondition(Condition.HashEqual(key, Owner, lease.Token));
        _ = tran.HashSetAsync(key, Deadline, Str(deadline));
        _ = tran.SortedSetAddAsync(_leases, lease.Task.Id, deadline);
        return await tran.ExecuteAsync();
    }

    public async Task<bool> CompleteAsync(TaskLease lease)
    {
        var key = TaskKey(lease.Task.Id);
        var tran = _db.CreateTransaction();
        tran.AddCondition(Condition.HashEqual(key, Owner, lease.Token));
        _ = tran.ListRemoveAsync(_processing, lease.Task.Id, 1);
        _ = tran.SortedSetRemoveAsync(_leases, lease.Task.Id);
        _ = tran.KeyDeleteAsync(key);
        _ = tran.HashIncrementAsync(_stats, "done");
        return await tran.ExecuteAsync();
    }

    public Task<bool> FailAsync(TaskLease lease, string error) =>
        EndDeliveryAsync(lease.Task.Id, lease.Token, null, lease.Failures, OneLine(error));

    public async Task<int> ReapAsync()
    {
        long now = NowMs();
        // Ids taken but never leased (the consumer died between BLMOVE and its lease) get a provisional lease, so
        // they expire like any other if nobody claims them in time.
        var leased = new HashSet<string>();
        foreach (var id in await _db.ListRangeAsync(_processing))
            if (leased.Add((string)id!) && await _db.SortedSetScoreAsync(_leases, id) is null)
                await _db.SortedSetAddAsync(_leases, id, now + (long)_options.Lease.TotalMilliseconds, SortedSetWhen.NotExists);

        int reaped = 0;
        foreach (var member in await _db.SortedSetRangeByScoreAsync(_leases, double.NegativeInfinity, now))
        {
            string id = (string)member!;
            var key = TaskKey(id);
            var hash = (await _db.HashGetAllAsync(key)).ToDictionary(e => (string)e.Name!, e => e.Value);
            if (!hash.ContainsKey(Json))
            {
                // The task is gone (completed between the two reads): drop what is left of it.
                var cleanup = _db.CreateTransaction();
                cleanup.AddCondition(Condition.KeyNotExists(key));
                _ = cleanup.SortedSetRemoveAsync(_leases, id);
                _ = cleanup.ListRemoveAsync(_processing, id, 1);
                await cleanup.ExecuteAsync();
                continue;
            }
            string? owner = hash.TryGetValue(Owner, out var o) ? (string?)o : null;
            string? deadline = hash.TryGetValue(Deadline, out var d) ? (string?)d : null;
            if (deadline != null && long.Parse(deadline, CultureInfo.InvariantCulture) > now) continue; // renewed meanwhile
            string why = owner == null
                ? "taken but never leased (its consumer stopped right after taking it)"
                : $"lease of {_options.LeaseSeconds:0.###} s expired (its consumer stopped or stalled)";
            if (await EndDeliveryAsync(id, owner, deadline, (int)hash[Attempts], why)) reaped++;
        }
        return reaped;
    }

    // Ends one delivery of a task: back to the queue's tail, or into the dead-letter list after the last attempt.
    // Holds only if the task still has the owner and deadline the caller saw (null: the field is absent) and its
    // attempt count is unchanged.
    async Task<bool> EndDeliveryAsync(string id, string? owner, string? deadline, int failures, string error)
    {
        var key = TaskKey(id);
        var tran = _db.CreateTransaction();
        tran.AddCondition(owner == null ? Condition.HashNotExists(key, Owner) : Condition.HashEqual(key, Owner, owner));
        if (deadline != null) tran.AddCondition(Condition.HashEqual(key, Deadline, deadline));
        tran.AddCondition(Condition.HashEqual(key, Attempts, Str(failures)));
        int attempts = failures + 1;
        _ = tran.ListRemoveAsync(_processing, id, 1);
        _ = tran.SortedSetRemoveAsync(_leases, id);
        _ = tran.HashDeleteAsync(key, [Owner, Deadline]);
        _ = tran.HashSetAsync(key, [new(Attempts, Str(attempts)), new(Error, error)]);
        if (attempts >= _options.MaxAttempts)
        {
            _ = tran.ListRightPushAsync(_dead, id);
        }
        else
        {
            _ = tran.ListLeftPushAsync(_pending, id);
            _ = tran.HashIncrementAsync(_stats, "retried");
        }
        return await tran.ExecuteAsync();
    }

    public async Task<QueueCounters> CountersAsync()
    {
        // One MULTI/EXEC: the numbers are a consistent snapshot.
        var tran = _db.CreateTransaction();
        var queued = tran.ListLengthAsync(_pending);
        var running = tran.ListLengthAsync(_processing);
        var dead = tran.ListLengthAsync(_dead);
        var stats = tran.HashGetAllAsync(_stats);
        await tran.ExecuteAsync();
        var s = (await stats).ToDictionary(e => (string)e.Name!, e => (long)e.Value);
        return new QueueCounters(await queued, await running, s.GetValueOrDefault("done"), await dead, s.GetValueOrDefault("retried"));
    }

    public async Task<IReadOnlyList<DeadLetter>> DeadLettersAsync()
    {
        var letters = new List<DeadLetter>();
        foreach (var id in await _db.ListRangeAsync(_dead))
        {
            var hash = (await _db.HashGetAllAsync(TaskKey((string)id!))).ToDictionary(e => (string)e.Name!, e => e.Value);
            letters.Add(new DeadLetter((string)id!, (string?)hash.GetValueOrDefault(Json) ?? "",
                (int)hash.GetValueOrDefault(Attempts, 0), (string?)hash.GetValueOrDefault(Error) ?? ""));
        }
        return letters;
    }

    static string OneLine(string text)
    {
        string line = text.ReplaceLineEndings(" ").Trim();
        return line.Length <= 2000 ? line : line[..2000] + "...";
    }
}
