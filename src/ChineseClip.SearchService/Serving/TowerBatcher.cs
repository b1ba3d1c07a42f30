// Request batching for one tower of one model: concurrent requests wait a short window for company, then run as one
// forward pass (at most MaxBatch inputs). A forward over 8 short texts costs far less than 8 forwards on a CPU.
using System.Threading.Channels;

namespace ChineseClip.SearchService.Serving;

public sealed class TowerBatcher<TInput> : IDisposable
{
    readonly Channel<(TInput Input, TaskCompletionSource<float[]> Done)> _queue = Channel.CreateUnbounded<(TInput, TaskCompletionSource<float[]>)>();
    readonly Func<IReadOnlyList<TInput>, float[]> _encode;
    readonly int _dimension, _maxBatch;
    readonly TimeSpan _window;
    readonly Task _loop;

    /// <param name="encode">Embeds a batch: [inputs, dimension] row-major.</param>
    public TowerBatcher(Func<IReadOnlyList<TInput>, float[]> encode, int dimension, int maxBatch, TimeSpan window)
    {
        _encode = encode;
        _dimension = dimension;
        _maxBatch = maxBatch;
        _window = window;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Batches served and inputs in them (for the service's metrics).</summary>
    public long Batches => Interlocked.Read(ref _batches);
    public long Inputs => Interlocked.Read(ref _inputs);
    long _batches, _inputs;

    public Task<float[]> EmbedAsync(TInput input)
    {
        var done = new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((input, done))) done.SetException(new ObjectDisposedException(nameof(TowerBatcher<TInput>)));
        return done.Task;
    }

    async Task RunAsync()
    {
        var batch = new List<(TInput Input, TaskCompletionSource<float[]> Done)>();
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            if (!_queue.Reader.TryRead(out var first)) continue;
            batch.Add(first);
            if (_maxBatch > 1 && _window > TimeSpan.Zero)
            {
                using var timeout = new CancellationTokenSource(_window);
                try
                {
                    while (batch.Count < _maxBatch && await _queue.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false))
                        while (batch.Count < _maxBatch && _queue.Reader.TryRead(out var next)) batch.Add(next);
                }
                catch (OperationCanceledException) { /* the window closed */ }
            }
            while (batch.Count < _maxBatch && _queue.Reader.TryRead(out var more)) batch.Add(more);
            try
            {
                float[] vectors = _encode(batch.Select(b => b.Input).ToList());
                for (int i = 0; i < batch.Count; i++) batch[i].Done.SetResult(vectors.AsSpan(i * _dimension, _dimension).ToArray());
                Interlocked.Increment(ref _batches);
                Interlocked.Add(ref _inputs, batch.Count);
            }
            catch (Exception e)
            {
                foreach (var b in batch) b.Done.TrySetException(e);
            }
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _loop.Wait(TimeSpan.FromSeconds(10));
    }
}
