// The cluster token: when Coordinator:Token is set, a call without the same "cnclip-token" header is refused, except
// the gRPC health service's (it tells no more than the HTTP /health endpoint, which needs no token either).
using System.Security.Cryptography;
using System.Text;
using ChineseClip.Coordinator.Extensions;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace ChineseClip.Coordinator.Services;

public sealed class TokenInterceptor(IOptions<CoordinatorOptions> options) : Interceptor
{
    public const string Header = "cnclip-token";

    const string HealthService = "/grpc.health.v1.Health/";

    void Check(ServerCallContext context)
    {
        string expected = options.Value.Token;
        if (expected.Length == 0 || context.Method.StartsWith(HealthService, StringComparison.Ordinal)) return;
        string given = context.RequestHeaders.GetValue(Header) ?? "";
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(expected)))
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"this cluster needs its token in the '{Header}' header"));
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }
}
