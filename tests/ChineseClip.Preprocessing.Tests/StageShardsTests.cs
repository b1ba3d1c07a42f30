using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;

namespace ChineseClip.Preprocessing.Tests;

public class StageShardsTests
{
    /// <summary>A queue whose server drops the first enqueue of each task without a word (it answers "already there",
    /// as a transaction aborted by a reconnect did), and a preprocessor behind it that "builds" a shard (an empty file
    /// where the task says) for each task it really got.</summary>
    sealed class LosingQueue : ITaskQueue
    {
        readonly ConcurrentDictionary<string, int> _asked = new();
        public int Built;

        public Task<bool> EnqueueAsync(PreprocessTask task)
        {
            if (_asked.AddOrUpdate(task.Id, 1, (_, n) => n + 1) == 1) return Task.FromResult(false); // lost
            if (!File.Exists(task.Id))
            {
                File.WriteAllBytes(task.Id, []);
                Interlocked.Increment(ref Built);
            }
            return Task.FromResult(true);
        }

        public Task<IReadOnlyList<DeadLetter>> DeadLettersAsync() => Task.FromResult<IReadOnlyList<DeadLetter>>([]);
        public Task<TaskLease?> TakeAsync(TimeSpan wait) => throw new NotSupportedException();
        public Task<bool> RenewAsync(TaskLease lease) => throw new NotSupportedException();
        public Task<bool> CompleteAsync(TaskLease lease) => throw new NotSupportedException();
        public Task<bool> FailAsync(TaskLease lease, string error) => throw new NotSupportedException();
        public Task<int> ReapAsync() => throw new NotSupportedException();
        public Task<QueueCounters> CountersAsync() => throw new NotSupportedException();
    }

    [Fact]
    public async Task Rank_0_queues_again_the_tasks_of_shards_that_never_came()
    {
        var queue = new LosingQueue();
        string shards = Directory.CreateTempSubdirectory("cnclip-stage-shards").FullName;
        var stage = new StageShards(queue, NullLogger.Instance) { RequeueEvery = TimeSpan.FromMilliseconds(100) };
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            string ready = await stage.PrepareAsync(DemoFiles.DataDir, DemoFiles.Vocab, shards, resolution: 32, contextLength: 16, rank: 0,
                pairsPerShard: 64, timeout.Token);

            int planned = Directory.GetFiles(ready, "train-*.shard").Length;
            Assert.True(planned > 1, $"{planned} shard(s)");
            Assert.Equal(planned, queue.Built); // every shard came from a task queued the second time
        }
        finally
        {
            Directory.Delete(shards, recursive: true);
        }
    }
}
