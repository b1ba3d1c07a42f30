// The CPU collectives of worker processes: a ring. Rank r sends to rank r+1 on one long-lived link and receives from
// rank r-1 (RingTransport: plain TCP by default, or gRPC streams). Every collective is a fixed schedule of chunks
// that both ends of each link know, so chunks carry no addresses, only the collective's number as a check.
//
// All-reduce is the bandwidth-optimal ring (reduce-scatter then all-gather, 2(N-1)/N of the tensor over each link),
// pipelined by chunk: a chunk received at step g is added (or copied) in place and, unchanged, is the chunk sent at
// step g+1, so a rank forwards it at once. Each segment's final sum is computed on one rank and copied to the others,
// so every rank ends with the same bits.
using System.Buffers;
using System.Threading.Channels;
using ChineseClip.Model.Runtime;
using ChineseClip.Training.Distributed;
using static TorchSharp.torch;

namespace ChineseClip.Distributed;

public sealed record RingOptions
{
    public RingTransport Transport { get; init; } = RingTransport.Tcp;
    /// <summary>A name shared by the ranks of one group; a link from another group is refused.</summary>
    public string Group { get; init; } = "cnclip";
    public string ListenHost { get; init; } = "127.0.0.1";
    /// <summary>The host other ranks dial, when it differs from the listen address (e.g. listening on 0.0.0.0).</summary>
    public string? AdvertiseHost { get; init; }
    /// <summary>0 picks a free port.</summary>
    public int Port { get; init; }
    public int ChunkBytes { get; init; } = 1 << 20;
    /// <summary>How long a rank waits for its predecessor's data (or for the rendezvous) before giving up.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);
}

public sealed class RingCollectives : ICollectives
{
    readonly RingOptions _options;
    readonly IRingInbound _inbound;
    readonly IRingOutbound _outbound;
    readonly IReadOnlyList<string> _addresses;
    ulong _operation;

    RingCollectives(int rank, int worldSize, RingOptions options, IRingInbound inbound, IRingOutbound outbound, IReadOnlyList<string> addresses)
    {
        (Rank, WorldSize, _options, _inbound, _outbound, _addresses) = (rank, worldSize, options, inbound, outbound, addresses);
    }

    public int Rank { get; }
    public int WorldSize { get; }
    int Next => (Rank + 1) % WorldSize;
    int Previous => (Rank + WorldSize - 1) % WorldSize;

    /// <summary>Listens, meets the other ranks through the rendezvous, and connects the ring.</summary>
    public static RingCollectives Connect(int rank, int worldSize, IRendezvous rendezvous, RingOptions? options = null)
    {
        options ??= new RingOptions();
        if (worldSize < 2) throw new ArgumentOutOfRangeException(nameof(worldSize), "a ring needs at least 2 ranks (use SingleProcess)");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank));
        int next = (rank + 1) % worldSize, previous = (rank + worldSize - 1) % worldSize;
        IRingInbound inbound = options.Transport == RingTransport.Grpc
            ? GrpcRingInbound.Listen(options, previous)
            : TcpRingInbound.Listen(options, previous);
        IRingOutbound? outbound = null;
        try
        {
            var addresses = rendezvous.Exchange(rank, worldSize, inbound.Address, options.Timeout);
            try
            {
                outbound = options.Transport == RingTransport.Grpc
                    ? GrpcRingOutbound.Connect(addresses[next], options, rank)
                    : TcpRingOutbound.Connect(addresses[next], options, rank);
            }
            catch (IOException e)
            {
                throw new IOException($"rank {rank}: cannot join rank {next} at {addresses[next]}: {e.Message}", e);
            }
            // Either our predecessor connects, or our successor refuses us (wrong group or rank) and says why.
            int first = Task.WaitAny([inbound.Connected, outbound.Closed], options.Timeout);
            if (first == 1)
            {
                string why = outbound.Closed.Exception?.InnerException is { } e ? (e as Grpc.Core.RpcException)?.Status.Detail ?? e.Message : "it closed the link";
                throw new IOException($"rank {rank}: rank {next} at {addresses[next]} refused the ring link: {why}");
            }
            if (first < 0)
                throw new TimeoutException($"rank {rank}: rank {previous} at {addresses[previous]} did not connect within {options.Timeout.TotalSeconds:F0} s");
            return new RingCollectives(rank, worldSize, options, inbound, outbound, addresses);
        }
        catch
        {
            outbound?.Dispose();
            inbound.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    public void AllReduceSum(Tensor flat)
    {
        if (flat.dtype != ScalarType.Float32 || !flat.is_contiguous())
            throw new ArgumentException("all-reduce takes a contiguous float32 tensor", nameof(flat));
        var segments = Split(flat.numel(), WorldSize, sizeof(float));
        Run(DataPointer(flat), segments, steps: 2 * (WorldSize - 1), reduceSteps: WorldSize - 1);
    }

    public Tensor[] AllGather(Tensor local)
    {
        using var source = local.detach().contiguous();
        long bytes = source.numel() * source.element_size();
        using var gathered = empty([WorldSize, .. source.shape], source.dtype);
        using (no_grad()) gathered[Rank].copy_(source);
        var segments = Enumerable.Range(0, WorldSize).Select(r => (r * bytes, bytes)).ToArray();
        Run(DataPointer(gathered), segments, steps: WorldSize - 1, reduceSteps: 0);
        return Enumerable.Range(0, WorldSize).Select(r => gathered[r].clone()).ToArray();
    }

    // A pipelined chain from the root around the ring.
    public void Broadcast(Tensor tensor, int root)
    {
        bool copied = !tensor.is_contiguous();
        using var buffer = copied ? tensor.contiguous() : tensor.alias();
        IntPtr data = DataPointer(buffer);
        ulong operation = ++_operation;
        var sends = Channel.CreateUnbounded<(long Offset, int Length)>();
        var sending = Send(operation, data, sends.Reader);
        try
        {
            foreach (var c in Chunks(0, buffer.numel() * buffer.element_size()))
            {
                if (Rank != root) Receive(operation, Region(data, c.Offset, c.Length), add: false);
                if (Next != root) sends.Writer.TryWrite(c);
            }
        }
        finally
        {
            sends.Writer.TryComplete();
            sending.GetAwaiter().GetResult();
        }
        if (Rank != root && copied)
            using (no_grad()) tensor.copy_(buffer);
    }

    public void Barrier()
    {
        using var one = zeros(1);
        AllReduceSum(one);
    }

    // The ring schedule: at step g this rank sends segment (r - g) mod N and receives segment (r - g - 1) mod N, which
    // it adds in place for the first reduceSteps steps and copies afterwards; what it receives at step g is what it
    // sends at step g + 1.
    void Run(IntPtr data, (long Offset, long Length)[] segments, int steps, int reduceSteps)
    {
        ulong operation = ++_operation;
        int n = WorldSize;
        var sends = Channel.CreateUnbounded<(long Offset, int Length)>();
        foreach (var c in Chunks(segments[Rank].Offset, segments[Rank].Length)) sends.Writer.TryWrite(c);
        if (steps == 1) sends.Writer.TryComplete();
        var sending = Send(operation, data, sends.Reader);
        try
        {
            for (int g = 0; g < steps; g++)
            {
                var (offset, length) = segments[((Rank - g - 1) % n + n) % n];
                foreach (var c in Chunks(offset, length))
                {
                    Receive(operation, Region(data, c.Offset, c.Length), add: g < reduceSteps);
                    if (g + 1 < steps) sends.Writer.TryWrite(c);
                }
                if (g + 2 == steps) sends.Writer.TryComplete();
            }
        }
        finally
        {
            sends.Writer.TryComplete();
            sending.GetAwaiter().GetResult();
        }
    }

    void Receive(ulong operation, Span<byte> target, bool add)
    {
        try
        {
            _inbound.Receive(operation, target, add, _options.Timeout);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"rank {Rank}: no data from rank {Previous} at {_addresses[Previous]} for {_options.Timeout.TotalSeconds:F0} s " +
                $"(collective #{operation}); is it alive?", e);
        }
        catch (IOException e)
        {
            throw new IOException($"rank {Rank}: {e.Message} (rank {Previous} at {_addresses[Previous]}, collective #{operation})", e);
        }
        catch (RingMismatchException e)
        {
            throw new RingMismatchException($"rank {Rank}: rank {Previous} {e.Message}");
        }
    }

    Task Send(ulong operation, IntPtr data, ChannelReader<(long Offset, int Length)> chunks) => Task.Run(async () =>
    {
        await foreach (var (offset, length) in chunks.ReadAllAsync())
        {
            // The bytes are wrapped, not copied: the schedule does not touch a region while it is being sent.
            using var region = new NativeRegion(data + (nint)offset, length);
            try
            {
                await _outbound.SendAsync(operation, region.Memory);
            }
            catch (IOException e)
            {
                throw new IOException($"rank {Rank}: cannot send to rank {Next} at {_addresses[Next]} (collective #{operation}): {e.Message}", e);
            }
        }
    });

    IEnumerable<(long Offset, int Length)> Chunks(long offset, long length)
    {
        for (long done = 0; done < length; done += _options.ChunkBytes)
            yield return (offset + done, (int)Math.Min(_options.ChunkBytes, length - done));
    }

    // N nearly equal segments, cut at element boundaries.
    static (long Offset, long Length)[] Split(long elements, int parts, int elementSize)
    {
        var segments = new (long, long)[parts];
        long start = 0;
        for (int p = 0; p < parts; p++)
        {
            long count = elements / parts + (p < elements % parts ? 1 : 0);
            segments[p] = (start * elementSize, count * elementSize);
            start += count;
        }
        return segments;
    }

    static unsafe Span<byte> Region(IntPtr data, long offset, int length) => new((byte*)data + offset, length);

    static IntPtr DataPointer(Tensor t) => TorchNative.DataPointer(t);

    public void Dispose()
    {
        _outbound.Complete();
        _outbound.Dispose();
        _inbound.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Native memory seen as Memory&lt;byte&gt;, so a transport can send it without a copy.</summary>
    sealed unsafe class NativeRegion(IntPtr pointer, int length) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new((void*)pointer, length);
        public override MemoryHandle Pin(int elementIndex = 0) => new((byte*)pointer + elementIndex);
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }
}
