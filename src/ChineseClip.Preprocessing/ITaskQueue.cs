namespace ChineseClip.Preprocessing;

/// <summary>A delivery of a task to one consumer, valid until <see cref="Deadline"/> unless renewed.</summary>
/// <param name="Token">Names this delivery: a consumer whose lease expired and was redelivered can no longer
/// complete, fail or renew the task.</param>
/// <param name="Failures">Failed deliveries before this one.</param>
public sealed record TaskLease(PreprocessTask Task, string Token, int Failures, DateTimeOffset Deadline);

/// <param name="Queued">Waiting to be taken.</param>
/// <param name="Running">Taken, under a lease.</param>
/// <param name="Done">Completed since the queue was created.</param>
/// <param name="Failed">In the dead-letter list (failed MaxAttempts times).</param>
/// <param name="Retries">Failed deliveries that were put back in the queue.</param>
public sealed record QueueCounters(long Queued, long Running, long Done, long Failed, long Retries);

public sealed record DeadLetter(string TaskId, string TaskJson, int Attempts, string Error);

/// <summary>A reliable work queue: at-least-once delivery under leases, redelivery of expired leases, a dead-letter
/// list after a task's last allowed failure. Outputs must be idempotent (a task may run twice).</summary>
public interface ITaskQueue
{
    /// <summary>Adds the task unless a task with its id is queued, running or dead-lettered; false then.</summary>
    Task<bool> EnqueueAsync(PreprocessTask task);

    /// <summary>Waits up to <paramref name="wait"/> for a task and leases it; null when none came.</summary>
    Task<TaskLease?> TakeAsync(TimeSpan wait);

    /// <summary>Extends the lease; false when it was lost (expired and redelivered).</summary>
    Task<bool> RenewAsync(TaskLease lease);

    /// <summary>Removes the task and counts it done; false when the lease was lost.</summary>
    Task<bool> CompleteAsync(TaskLease lease);

    /// <summary>Records a failed delivery: back to the queue, or to the dead-letter list after the last allowed
    /// attempt; false when the lease was lost.</summary>
    Task<bool> FailAsync(TaskLease lease, string error);

    /// <summary>Treats expired leases as failed deliveries (their consumer died or stalled); returns how many.</summary>
    Task<int> ReapAsync();

    Task<QueueCounters> CountersAsync();

    Task<IReadOnlyList<DeadLetter>> DeadLettersAsync();
}
