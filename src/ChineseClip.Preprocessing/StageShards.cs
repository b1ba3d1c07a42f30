// A stage's training data through the preprocessing queue: rank 0 cuts the train split into shard tasks and queues
// them (skipping shards already built: tasks are idempotent); every rank waits until the plan's shards are all
// published, then trains from them. Preprocessors anywhere in the cluster do the decoding, once per image.
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Data.Shards;
using Microsoft.Extensions.Logging;

namespace ChineseClip.Preprocessing;

public sealed class StageShards(ITaskQueue queue, ILogger log)
{
    const string PlanFile = "plan.json";
    public static readonly TimeSpan Patience = TimeSpan.FromHours(2);

    /// <summary>How often rank 0, while it waits, queues again the tasks of shards not built yet (a no-op for a task
    /// still queued or running): a task lost on the way (an enqueue the server never applied, a Redis without
    /// persistence restarted) would otherwise leave every rank waiting out the patience.</summary>
    public TimeSpan RequeueEvery { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Returns the folder holding the complete train shards of the stage.</summary>
    public async Task<string> PrepareAsync(string trainData, string vocab, string shardsDir, int resolution, int contextLength, int rank,
        int pairsPerShard, CancellationToken cancel)
    {
        Directory.CreateDirectory(shardsDir);
        string plan = Path.Combine(shardsDir, PlanFile);
        IReadOnlyList<ShardSpec> specs = [];
        string? traceParent = Activity.Current?.Id is { Length: > 0 } parent ? parent : null;
        // Queues the task of every shard not built yet (built by an earlier attempt, or since); the queue refuses ids
        // it already holds. Returns how many it queued.
        async Task<int> QueueMissing()
        {
            int queued = 0;
            foreach (var spec in specs)
            {
                if (File.Exists(Path.Combine(shardsDir, spec.Info.FileName()))) continue;
                var task = PreprocessTask.ForShard(spec, vocab, shardsDir, traceParent);
                if (await Patiently(() => queue.EnqueueAsync(task), cancel)) queued++;
            }
            return queued;
        }
        if (rank == 0)
        {
            specs = ShardBuilder.Plan(trainData, "train", pairsPerShard, resolution, contextLength, e => log.LogWarning("{Problem}", e));
            int queued = await QueueMissing();
            File.WriteAllText(plan + ".tmp", JsonSerializer.Serialize(new { shards = specs.Count }));
            File.Move(plan + ".tmp", plan, overwrite: true);
            log.LogInformation("{Data}: {Shards} shard(s) of the train split, {Queued} queued for the preprocessors", trainData, specs.Count, queued);
        }

        var watch = Stopwatch.StartNew();
        var sinceQueued = Stopwatch.StartNew();
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            if (File.Exists(plan))
            {
                int expected = JsonDocument.Parse(File.ReadAllText(plan)).RootElement.GetProperty("shards").GetInt32();
                int built = Directory.GetFiles(shardsDir, "train-*.shard").Length;
                if (built >= expected) return shardsDir;
                if (rank == 0)
                {
                    var dead = (await Patiently(queue.DeadLettersAsync, cancel)).FirstOrDefault(d => d.TaskId.StartsWith(Path.GetFullPath(shardsDir), StringComparison.Ordinal));
                    if (dead is not null)
                        throw new InvalidDataException($"preprocessing failed for {dead.TaskId} after {dead.Attempts} attempt(s): {dead.Error}");
                    if (sinceQueued.Elapsed >= RequeueEvery)
                    {
                        sinceQueued.Restart();
                        if (await QueueMissing() is > 0 and var again)
                            log.LogWarning("{Shards}: {Again} shard task(s) were in no queue and are queued again", shardsDir, again);
                    }
                }
            }
            if (watch.Elapsed > Patience)
                throw new TimeoutException($"{shardsDir}: the preprocessors did not finish the train shards within {Patience.TotalMinutes:F0} minutes (are any running?)");
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancel);
        }
    }

    // The queue's client can fail transiently under load (a command timeout, a reconnect racing its reader: seen with
    // StackExchange.Redis 2.13 as "Reading is not allowed after reader was completed"). Enqueueing is idempotent and
    // reading the dead letters has no effect, so a few more tries are safe; only then does the stage fail (and the
    // coordinator retry it).
    async Task<T> Patiently<T>(Func<Task<T>> call, CancellationToken cancel)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (e is not OperationCanceledException && attempt < 5)
            {
                log.LogWarning("Preprocessing queue call failed ({Error}); retry {Attempt} of 4", e.Message, attempt);
                await Task.Delay(TimeSpan.FromSeconds(attempt), cancel);
            }
        }
    }
}
