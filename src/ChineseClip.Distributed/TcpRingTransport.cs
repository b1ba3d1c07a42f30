// Ring links over plain TCP: after a hello (group and rank, answered with accept or the reason for refusal), each
// chunk is a 16-byte header (collective number, length) and the bytes. A copied chunk is read straight into its
// place in the tensor; an added one goes through a scratch buffer.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ChineseClip.Distributed;

static class TcpRingWire
{
    public const int HeaderBytes = 16;
    public const int BufferBytes = 4 << 20;

    public static void ReadExactly(Socket socket, Span<byte> buffer, string whatCloses)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n;
            try
            {
                n = socket.Receive(buffer[done..]);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                throw new TimeoutException("no data", e);
            }
            catch (SocketException e)
            {
                throw new IOException($"lost the ring link ({e.SocketErrorCode})", e);
            }
            if (n == 0) throw new IOException(done == 0 ? whatCloses : "lost the ring link in the middle of a chunk");
            done += n;
        }
    }

    public static void WriteString(Socket socket, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        socket.Send(length);
        socket.Send(bytes);
    }

    public static string ReadString(Socket socket, string whatCloses)
    {
        Span<byte> length = stackalloc byte[4];
        ReadExactly(socket, length, whatCloses);
        int n = BinaryPrimitives.ReadInt32LittleEndian(length);
        if (n is < 0 or > 4096) throw new IOException($"not a ring peer (a {n}-byte hello)");
        var bytes = new byte[n];
        ReadExactly(socket, bytes, whatCloses);
        return Encoding.UTF8.GetString(bytes);
    }

    public static void Tune(Socket socket)
    {
        socket.NoDelay = true;
        socket.SendBufferSize = BufferBytes;
        socket.ReceiveBufferSize = BufferBytes;
    }
}

sealed class TcpRingInbound : IRingInbound
{
    readonly TcpListener _listener;
    readonly string _group;
    readonly int _expectedFrom;
    readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly Task _accepting;
    readonly byte[] _header = new byte[TcpRingWire.HeaderBytes];
    byte[] _scratch = [];
    Socket? _socket;

    TcpRingInbound(TcpListener listener, string group, int expectedFrom, string address)
    {
        (_listener, _group, _expectedFrom, Address) = (listener, group, expectedFrom, address);
        _accepting = Task.Run(AcceptLoop);
    }

    public string Address { get; }
    public Task Connected => _connected.Task;

    public static TcpRingInbound Listen(RingOptions options, int expectedFrom)
    {
        var listener = new TcpListener(IPAddress.Parse(options.ListenHost), options.Port);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        return new TcpRingInbound(listener, options.Group, expectedFrom, $"tcp://{options.AdvertiseHost ?? options.ListenHost}:{port}");
    }

    async Task AcceptLoop()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return; // the listener was stopped
            }
            _ = Task.Run(() => Handshake(socket));
        }
    }

    void Handshake(Socket socket)
    {
        try
        {
            TcpRingWire.Tune(socket);
            socket.ReceiveTimeout = 30_000;
            string[] hello = TcpRingWire.ReadString(socket, "closed before its hello").Split('\n');
            string why = hello.Length == 2 && int.TryParse(hello[1], out int from)
                ? RingHello.Check(hello[0], from, _group, _expectedFrom)
                : "not a ring hello";
            if (why.Length == 0 && Interlocked.CompareExchange(ref _socket, socket, null) is not null) why = $"rank {_expectedFrom} is already connected";
            TcpRingWire.WriteString(socket, why);
            if (why.Length > 0)
            {
                socket.Dispose();
                return;
            }
            _connected.TrySetResult();
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException)
        {
            socket.Dispose(); // a port scanner or a peer that died while connecting: not our predecessor
        }
    }

    public void Receive(ulong operation, Span<byte> target, bool add, TimeSpan timeout)
    {
        var socket = _socket ?? throw new InvalidOperationException("the predecessor has not connected");
        socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, timeout.TotalMilliseconds);
        string closed = $"rank {_expectedFrom} closed its ring link";
        TcpRingWire.ReadExactly(socket, _header, closed);
        ulong op = BinaryPrimitives.ReadUInt64LittleEndian(_header);
        int length = BinaryPrimitives.ReadInt32LittleEndian(_header.AsSpan(8));
        RingHello.Check(op, length, operation, target.Length);
        if (!add)
        {
            TcpRingWire.ReadExactly(socket, target, closed);
            return;
        }
        if (_scratch.Length < length) _scratch = new byte[length];
        var chunk = _scratch.AsSpan(0, length);
        TcpRingWire.ReadExactly(socket, chunk, closed);
        RingMath.Add(target, chunk);
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        await _accepting;
        _socket?.Dispose();
    }
}

sealed class TcpRingOutbound : IRingOutbound
{
    readonly Socket _socket;
    readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly byte[] _header = new byte[TcpRingWire.HeaderBytes];

    TcpRingOutbound(Socket socket) => _socket = socket;

    public Task Closed => _closed.Task;

    public static TcpRingOutbound Connect(string address, RingOptions options, int rank)
    {
        var uri = new Uri(address);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            TcpRingWire.Tune(socket);
            using (var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                try
                {
                    socket.ConnectAsync(uri.Host, uri.Port, connectTimeout.Token).AsTask().GetAwaiter().GetResult();
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    throw new IOException(e is SocketException s ? $"{s.SocketErrorCode}" : "no answer within 30 s", e);
                }
            }
            socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, options.Timeout.TotalMilliseconds);
            socket.SendTimeout = socket.ReceiveTimeout;
            TcpRingWire.WriteString(socket, $"{options.Group}\n{rank}");
            string refusal = TcpRingWire.ReadString(socket, "it closed the link during the hello");
            if (refusal.Length > 0) throw new IOException(refusal);
            return new TcpRingOutbound(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public ValueTask SendAsync(ulong operation, ReadOnlyMemory<byte> data)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_header, operation);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(8), data.Length);
        try
        {
            _socket.Send(_header);
            var span = data.Span;
            while (span.Length > 0) span = span[_socket.Send(span)..];
        }
        catch (SocketException e)
        {
            _closed.TrySetException(e);
            throw new IOException($"lost the ring link ({e.SocketErrorCode})", e);
        }
        return ValueTask.CompletedTask;
    }

    public void Complete()
    {
        try { _socket.Shutdown(SocketShutdown.Send); } catch (SocketException) { }
        _closed.TrySetResult();
    }

    public void Dispose() => _socket.Dispose();
}
