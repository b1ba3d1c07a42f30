// Ring links over gRPC: the predecessor opens one client stream (ring.proto) on this rank's Kestrel server (h2c) for
// the life of the group; chunks reach the collectives through a bounded channel, so a fast sender is held back by
// HTTP/2 flow control rather than by memory.
using System.Net;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using ChineseClip.Contracts.Ring;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ChineseClip.Distributed;

sealed class GrpcRingInbound : IRingInbound
{
    readonly WebApplication _app;
    readonly Inbox _inbox;

    GrpcRingInbound(WebApplication app, Inbox inbox, string address) => (_app, _inbox, Address) = (app, inbox, address);

    public string Address { get; }
    public Task Connected => _inbox.Connected;

    public static GrpcRingInbound Listen(RingOptions options, int expectedFrom)
    {
        var inbox = new Inbox(options.Group, expectedFrom);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Parse(options.ListenHost), options.Port, listen => listen.Protocols = HttpProtocols.Http2);
            // Large windows and frames: this link carries hundreds of MB per step over one stream.
            kestrel.Limits.Http2.InitialConnectionWindowSize = 64 << 20;
            kestrel.Limits.Http2.InitialStreamWindowSize = 32 << 20;
            kestrel.Limits.Http2.MaxFrameSize = (1 << 24) - 1;
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.MinRequestBodyDataRate = null;
        });
        builder.Services.AddGrpc(grpc => grpc.MaxReceiveMessageSize = options.ChunkBytes + (1 << 16));
        builder.Services.AddSingleton(inbox);
        var app = builder.Build();
        app.MapGrpcService<RingService>();
        app.StartAsync().GetAwaiter().GetResult();
        var bound = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return new GrpcRingInbound(app, inbox, $"http://{options.AdvertiseHost ?? options.ListenHost}:{bound.Port}");
    }

    public void Receive(ulong operation, Span<byte> target, bool add, TimeSpan timeout)
    {
        RingChunk chunk;
        using (var cancel = new CancellationTokenSource(timeout))
        {
            try
            {
                chunk = _inbox.Chunks.ReadAsync(cancel.Token).AsTask().GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("no data");
            }
            catch (ChannelClosedException e)
            {
                throw new IOException((e.InnerException ?? e).Message, e);
            }
        }
        RingHello.Check(chunk.Operation, chunk.Data.Length, operation, target.Length);
        if (add) RingMath.Add(target, chunk.Data.Span);
        else chunk.Data.Span.CopyTo(target);
    }

    public async ValueTask DisposeAsync()
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try { await _app.StopAsync(grace.Token); } catch (OperationCanceledException) { }
        await _app.DisposeAsync();
    }

    sealed class Inbox(string group, int expectedFrom)
    {
        readonly Channel<RingChunk> _chunks = Channel.CreateBounded<RingChunk>(new BoundedChannelOptions(32) { SingleReader = true, SingleWriter = true });
        readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
        int _streams;

        public int ExpectedFrom => expectedFrom;
        public ChannelReader<RingChunk> Chunks => _chunks.Reader;
        public Task Connected => _connected.Task;

        public bool TryAccept(RingChunk hello, out string why)
        {
            why = RingHello.Check(hello.Group, hello.FromRank, group, expectedFrom);
            if (why.Length == 0 && Interlocked.Increment(ref _streams) != 1) why = $"rank {expectedFrom} is already connected";
            if (why.Length > 0) return false;
            _connected.TrySetResult();
            return true;
        }

        public ValueTask Deliver(RingChunk chunk, CancellationToken cancel) => _chunks.Writer.WriteAsync(chunk, cancel);

        public void Close(Exception error) => _chunks.Writer.TryComplete(error);
    }

    sealed class RingService(Inbox inbox) : Ring.RingBase
    {
        public override async Task<RingStreamEnd> Stream(IAsyncStreamReader<RingChunk> requestStream, ServerCallContext context)
        {
            var cancel = context.CancellationToken;
            if (!await requestStream.MoveNext(cancel)) return new RingStreamEnd();
            if (!inbox.TryAccept(requestStream.Current, out string why))
                throw new RpcException(new Status(StatusCode.FailedPrecondition, why));
            try
            {
                while (await requestStream.MoveNext(cancel)) await inbox.Deliver(requestStream.Current, cancel);
                inbox.Close(new IOException($"rank {inbox.ExpectedFrom} closed its ring stream"));
            }
            catch (Exception e)
            {
                inbox.Close(new IOException($"lost the ring stream from rank {inbox.ExpectedFrom} ({e.GetType().Name}: {e.Message})", e));
            }
            return new RingStreamEnd();
        }
    }
}

sealed class GrpcRingOutbound : IRingOutbound
{
    readonly GrpcChannel _channel;
    readonly AsyncClientStreamingCall<RingChunk, RingStreamEnd> _call;

    GrpcRingOutbound(GrpcChannel channel, AsyncClientStreamingCall<RingChunk, RingStreamEnd> call) => (_channel, _call) = (channel, call);

    public Task Closed => _call.ResponseAsync;

    public static GrpcRingOutbound Connect(string address, RingOptions options, int rank)
    {
        var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(30),
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
            },
            MaxSendMessageSize = options.ChunkBytes + (1 << 16),
        });
        try
        {
            var call = new Ring.RingClient(channel).Stream();
            call.RequestStream.WriteAsync(new RingChunk { Group = options.Group, FromRank = rank }).GetAwaiter().GetResult();
            return new GrpcRingOutbound(channel, call);
        }
        catch (RpcException e)
        {
            channel.Dispose();
            throw new IOException(e.Status.Detail, e);
        }
    }

    // Protobuf serialises the wrapped bytes into the HTTP/2 stream before WriteAsync completes.
    public async ValueTask SendAsync(ulong operation, ReadOnlyMemory<byte> data)
    {
        try
        {
            await _call.RequestStream.WriteAsync(new RingChunk { Operation = operation, Data = UnsafeByteOperations.UnsafeWrap(data) });
        }
        catch (RpcException e)
        {
            throw new IOException(e.Status.Detail, e);
        }
    }

    public void Complete()
    {
        try
        {
            _call.RequestStream.CompleteAsync().Wait(TimeSpan.FromSeconds(5));
            _call.ResponseAsync.Wait(TimeSpan.FromSeconds(5));
        }
        catch (Exception) { } // the successor may already be gone; nothing is left to deliver
    }

    public void Dispose()
    {
        _call.Dispose();
        _channel.Dispose();
    }
}

static class RingMath
{
    public static void Add(Span<byte> target, ReadOnlySpan<byte> addend)
    {
        var sum = MemoryMarshal.Cast<byte, float>(target);
        System.Numerics.Tensors.TensorPrimitives.Add(sum, MemoryMarshal.Cast<byte, float>(addend), sum);
    }
}
