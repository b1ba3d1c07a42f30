// The two ends of a ring link, whatever carries the bytes. A rank listens (IRingInbound) for its predecessor and
// dials (IRingOutbound) its successor; RingCollectives runs the schedules over them.
//
// Two carriers: gRPC client streams (HTTP/2), and plain TCP. gRPC is several times slower (README, the numbers of
// bench allreduce): .NET's HTTP/2 client cuts every DATA frame at 16 KiB and both ends handle each frame. So TCP is
// the default and gRPC stays for networks where only HTTP/2 passes.
namespace ChineseClip.Distributed;

public enum RingTransport { Tcp, Grpc }

interface IRingInbound : IAsyncDisposable
{
    /// <summary>The address the predecessor dials (tcp://host:port or http://host:port).</summary>
    string Address { get; }

    /// <summary>Completes when the predecessor has connected and been accepted.</summary>
    Task Connected { get; }

    /// <summary>Reads the next chunk (which must belong to <paramref name="operation"/> and fill
    /// <paramref name="target"/> exactly) and copies it into the target or adds it (float32) to it.
    /// Throws TimeoutException after the timeout, IOException when the link is lost, RingMismatchException.</summary>
    void Receive(ulong operation, Span<byte> target, bool add, TimeSpan timeout);
}

interface IRingOutbound : IDisposable
{
    /// <summary>Faults when the successor refuses this rank (wrong group or rank) or the link breaks.</summary>
    Task Closed { get; }

    /// <summary>Sends one chunk; the memory must stay unchanged until the returned task completes.</summary>
    ValueTask SendAsync(ulong operation, ReadOnlyMemory<byte> data);

    /// <summary>Ends the stream: the successor sees a clean close.</summary>
    void Complete();
}

/// <summary>The two ends of a link disagree about the collective being run.</summary>
public sealed class RingMismatchException(string message) : Exception(message);

static class RingHello
{
    /// <summary>Why a predecessor is refused, or "" when it is accepted.</summary>
    public static string Check(string group, int fromRank, string expectedGroup, int expectedFrom) =>
        group != expectedGroup ? $"group '{group}' is not this rank's group '{expectedGroup}'"
        : fromRank != expectedFrom ? $"rank {fromRank} is not this rank's ring predecessor {expectedFrom}"
        : "";

    public static void Check(ulong operation, int length, ulong expectedOperation, int expectedLength)
    {
        if (operation != expectedOperation || length != expectedLength)
            throw new RingMismatchException($"received {length} bytes of collective #{operation} where {expectedLength} bytes of collective " +
                $"#{expectedOperation} were due: the ranks called different collectives");
    }
}
