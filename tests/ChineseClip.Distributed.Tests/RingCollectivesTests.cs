using ChineseClip.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Distributed.Tests;

public class RingCollectivesTests
{
    // Ranks as threads of this process, each with its own server on loopback: the same code path as worker processes.
    static T[] OnRanks<T>(int worldSize, Func<RingCollectives, T> body, RingTransport transport = RingTransport.Tcp, RingOptions? options = null)
    {
        string rendezvous = Path.Combine(Path.GetTempPath(), "cnclip-ring-" + Guid.NewGuid().ToString("N"));
        options = (options ?? new RingOptions { ChunkBytes = 1000, Timeout = TimeSpan.FromSeconds(60) }) with { Transport = transport };
        try
        {
            var tasks = Enumerable.Range(0, worldSize).Select(r => Task.Factory.StartNew(() =>
            {
                using var ring = RingCollectives.Connect(r, worldSize, new FileRendezvous(rendezvous), options);
                return body(ring);
            }, TaskCreationOptions.LongRunning)).ToArray();
            Assert.True(Task.WaitAll(tasks, TimeSpan.FromSeconds(120)), "the ranks did not finish");
            return tasks.Select(t => t.Result).ToArray();
        }
        finally
        {
            if (Directory.Exists(rendezvous)) Directory.Delete(rendezvous, recursive: true);
        }
    }

    static float[] Values(int rank, int count)
    {
        var random = new Random(100 + rank);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    [Theory]
    [InlineData(2, 1, RingTransport.Tcp)]
    [InlineData(2, 10_007, RingTransport.Tcp)]
    [InlineData(3, 10_007, RingTransport.Tcp)]
    [InlineData(4, 3, RingTransport.Tcp)]
    [InlineData(2, 10_007, RingTransport.Grpc)]
    [InlineData(3, 10_007, RingTransport.Grpc)]
    public void All_reduce_sums_every_rank_and_leaves_the_same_bits_everywhere(int worldSize, int count, RingTransport transport)
    {
        var results = OnRanks(worldSize, ring =>
        {
            using var t = tensor(Values(ring.Rank, count));
            ring.AllReduceSum(t);
            ring.AllReduceSum(t); // a second collective on the same streams: the sum of N sums
            return t.data<float>().ToArray();
        }, transport);
        for (int i = 0; i < count; i++)
        {
            double expected = worldSize * Enumerable.Range(0, worldSize).Sum(r => (double)Values(r, count)[i]);
            Assert.True(Math.Abs(results[0][i] - expected) < 1e-4, $"element {i}: {results[0][i]} vs {expected}");
        }
        foreach (var other in results[1..]) Assert.Equal(results[0], other);
    }

    [Theory]
    [InlineData(RingTransport.Tcp)]
    [InlineData(RingTransport.Grpc)]
    public void All_gather_returns_every_rank_in_rank_order_with_its_dtype(RingTransport transport)
    {
        var results = OnRanks(3, ring =>
        {
            using Scalar value = ring.Rank * 10L;
            using var local = full(2, 3, value, dtype: ScalarType.Int64);
            return ring.AllGather(local).Select(t => (t.dtype, t.shape, t.data<long>().ToArray())).ToArray();
        }, transport);
        foreach (var gathered in results)
            for (int r = 0; r < 3; r++)
            {
                Assert.Equal(ScalarType.Int64, gathered[r].dtype);
                Assert.Equal([2L, 3], gathered[r].shape);
                Assert.All(gathered[r].Item3, v => Assert.Equal(r * 10L, v));
            }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void Broadcast_copies_the_roots_tensor_even_into_a_non_contiguous_view(int root)
    {
        var results = OnRanks(3, ring =>
        {
            using Scalar rank = (double)ring.Rank;
            using var storage = full(5, 4, rank, dtype: ScalarType.Float64);
            using var view = storage.t(); // 4 x 5, not contiguous
            ring.Broadcast(view, root);
            return storage.data<double>().ToArray();
        });
        foreach (var values in results) Assert.All(values, v => Assert.Equal(root, v));
    }

    [Theory]
    [InlineData(RingTransport.Tcp)]
    [InlineData(RingTransport.Grpc)]
    public void A_rank_that_leaves_is_named_in_the_error_of_the_rank_waiting_for_it(RingTransport transport)
    {
        var errors = OnRanks(2, ring =>
        {
            if (ring.Rank == 1) return ""; // leaves without taking part: Dispose closes its stream
            using var t = ones(100);
            var e = Assert.ThrowsAny<IOException>(() => ring.AllReduceSum(t));
            return e.Message;
        }, transport);
        Assert.Contains("rank 1", errors[0]);
        Assert.Contains("rank 0", errors[0]);
    }

    [Theory]
    [InlineData(RingTransport.Tcp, "tcp")]
    [InlineData(RingTransport.Grpc, "http")]
    public void A_silent_rank_times_out_with_its_rank_and_address_named(RingTransport transport, string scheme)
    {
        using var release = new ManualResetEventSlim();
        var errors = OnRanks(2, ring =>
        {
            if (ring.Rank == 1) { release.Wait(TimeSpan.FromSeconds(30)); return ""; }
            using var t = ones(100);
            var e = Assert.Throws<TimeoutException>(() => ring.AllReduceSum(t));
            release.Set();
            return e.Message;
        }, transport, new RingOptions { Timeout = TimeSpan.FromSeconds(2) });
        Assert.Contains($"no data from rank 1 at {scheme}://127.0.0.1:", errors[0]);
    }

    [Theory]
    [InlineData(RingTransport.Tcp)]
    [InlineData(RingTransport.Grpc)]
    public void A_link_from_another_group_is_refused(RingTransport transport)
    {
        string rendezvous = Path.Combine(Path.GetTempPath(), "cnclip-ring-" + Guid.NewGuid().ToString("N"));
        var options = new RingOptions { Timeout = TimeSpan.FromSeconds(5), Transport = transport };
        var a = Task.Run(() => RingCollectives.Connect(0, 2, new FileRendezvous(rendezvous), options with { Group = "run-a" }));
        var b = Task.Run(() => RingCollectives.Connect(1, 2, new FileRendezvous(rendezvous), options with { Group = "run-b" }));
        var error = Assert.ThrowsAny<Exception>(() => Task.WaitAll(a, b));
        Assert.Contains("is not this rank's group", string.Join(" | ", ((AggregateException)error).Flatten().InnerExceptions.Select(e => e.Message)));
        Directory.Delete(rendezvous, recursive: true);
    }
}
