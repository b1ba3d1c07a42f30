// The consumer loop: take a task under a lease, renew the lease while the shard is built, complete or fail it, and
// every ReapSeconds redeliver the tasks of consumers that died. Any number of consumers may run against one queue.
using System.Collections.Concurrent;
using System.Diagnostics;
using ChineseClip.Data.Shards;
using ChineseClip.Model.Text;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChineseClip.Preprocessing;

public sealed class QueueConsumer(ITaskQueue queue, PreprocessingOptions options, ILogger logger)
{
    readonly ConcurrentDictionary<string, ClipTokenizer> _tokenizers = new();

    /// <summary>Runs until <paramref name="stopping"/> is cancelled; a task in hand is finished first.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        var sinceReap = Stopwatch.StartNew();
        bool first = true;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (first || sinceReap.Elapsed >= options.ReapInterval)
                {
                    first = false;
                    sinceReap.Restart();
                    int reaped = await queue.ReapAsync();
                    if (reaped > 0) logger.LogWarning("redelivered {Count} task(s) whose lease expired", reaped);
                    PreprocessingTelemetry.Observe(await queue.CountersAsync());
                }
                if (await queue.TakeAsync(options.TakeWait) is { } lease) await ProcessAsync(lease);
            }
            // StackExchange.Redis 2.13 can also surface a reconnect racing its reader as InvalidOperationException.
            catch (Exception e) when (e is RedisException or InvalidOperationException or TimeoutException)
            {
                logger.LogWarning("queue unavailable, retrying in 1 s: {Message}", e.Message);
                try { await Task.Delay(TimeSpan.FromSeconds(1), stopping); } catch (OperationCanceledException) { }
            }
        }
    }

    /// <summary>Builds the task's shard and completes it, or records the failure.</summary>
    public async Task ProcessAsync(TaskLease lease)
    {
        var task = lease.Task;
        using var activity = PreprocessingTelemetry.StartProcessing(lease);
        using var finished = new CancellationTokenSource();
        var renewal = RenewUntilAsync(lease, finished.Token);
        var clock = Stopwatch.StartNew();
        try
        {
            var rejects = new List<string>();
            var (path, samples) = await Task.Run(() => ShardBuilder.BuildAndWrite(task.Spec, Tokenizer(task.Vocab), task.OutputDir, e => { lock (rejects) rejects.Add(e); }));
            foreach (string reject in rejects) logger.LogWarning("{Reject} (pair left out)", reject);
            await finished.CancelAsync();
            await renewal;
            bool completed = await queue.CompleteAsync(lease);
            if (completed) PreprocessingTelemetry.ShardsDone.Add(1);
            activity?.SetTag("cnclip.samples", samples);
            logger.LogInformation("shard {Path}: {Samples} samples of {Pairs} pairs, {Rejects} left out, {Ms} ms, attempt {Attempt}{Note}",
                path, samples, task.PairCount, rejects.Count, clock.ElapsedMilliseconds, lease.Failures + 1,
                completed ? "" : " (lease lost meanwhile: the redelivery writes the same bytes)");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            await finished.CancelAsync();
            await renewal;
            string error = e is IOException or InvalidDataException or ArgumentException or FormatException or UnauthorizedAccessException
                ? e.Message : $"{e.GetType().Name}: {e.Message}";
            bool recorded = await queue.FailAsync(lease, error);
            PreprocessingTelemetry.ShardsFailed.Add(1);
            activity?.SetStatus(ActivityStatusCode.Error, error);
            logger.LogError("task {Id} failed (attempt {Attempt} of {Max}{Note}): {Error}", task.Id, lease.Failures + 1,
                options.MaxAttempts, recorded ? "" : ", lease already lost", error.ReplaceLineEndings(" "));
        }
    }

    async Task RenewUntilAsync(TaskLease lease, CancellationToken finished)
    {
        var period = options.Lease / 3;
        while (!finished.IsCancellationRequested)
        {
            try { await Task.Delay(period, finished); }
            catch (OperationCanceledException) { return; }
            try
            {
                if (!await queue.RenewAsync(lease))
                {
                    logger.LogWarning("task {Id}: lease lost (expired and redelivered)", lease.Task.Id);
                    return;
                }
            }
            catch (Exception e) when (e is RedisException or InvalidOperationException or TimeoutException)
            {
                logger.LogWarning("task {Id}: lease renewal failed, retrying: {Message}", lease.Task.Id, e.Message);
            }
        }
    }

    ClipTokenizer Tokenizer(string vocab) => _tokenizers.GetOrAdd(vocab, ClipTokenizer.FromVocabFile);
}
