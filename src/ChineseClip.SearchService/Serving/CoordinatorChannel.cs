// The coordinator's gRPC client for deploys and Search:Follow: h2c, with the cluster token when one is set.
using ChineseClip.Contracts.Coordinator;
using ChineseClip.SearchService.Extensions;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace ChineseClip.SearchService.Serving;

public sealed class CoordinatorChannel : IDisposable
{
    readonly GrpcChannel _channel;

    public CoordinatorChannel(IServiceProvider services, IConfiguration configuration)
    {
        var options = services.Options();
        Address = options.Coordinator ?? configuration["services:coordinator:grpc:0"] ?? "http://127.0.0.1:5290";
        _channel = GrpcChannel.ForAddress(Address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) },
        });
        var invoker = options.Token.Length == 0 ? _channel.CreateCallInvoker()
            : _channel.CreateCallInvoker().Intercept(metadata =>
            {
                metadata.Add("cnclip-token", options.Token);
                return metadata;
            });
        Client = new Coordinator.CoordinatorClient(invoker);
    }

    public string Address { get; }
    public Coordinator.CoordinatorClient Client { get; }

    public void Dispose() => _channel.Dispose();
}
