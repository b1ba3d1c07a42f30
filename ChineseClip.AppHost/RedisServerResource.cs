// Redis for machines without a container engine: Debian's redis-server run as an executable resource, exposing the
// same connection string a Redis container would, so services use AddRedisClient("redis") either way.
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;

namespace ChineseClip.AppHost;

public sealed class RedisServerResource(string name, string dataDirectory)
    : ExecutableResource(name, "redis-server", dataDirectory), IResourceWithConnectionString
{
    EndpointReference? _endpoint;
    public EndpointReference Endpoint => _endpoint ??= new(this, "tcp");

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{Endpoint.Property(EndpointProperty.Host)}:{Endpoint.Property(EndpointProperty.Port)}");
}

public static class RedisServerExtensions
{
    /// <summary>redis-server with append-only persistence in <paramref name="dataDirectory"/>, so schedules survive restarts.</summary>
    public static IResourceBuilder<RedisServerResource> AddRedisServer(this IDistributedApplicationBuilder builder, string name, string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var resource = new RedisServerResource(name, dataDirectory);
        string healthKey = $"{name}_check";
        string? connectionString = null;
        builder.Eventing.Subscribe<ConnectionStringAvailableEvent>(resource, async (_, cancel) =>
            connectionString = await resource.ConnectionStringExpression.GetValueAsync(cancel));
        builder.Services.AddHealthChecks().AddRedis(_ => connectionString ?? throw new InvalidOperationException("redis has no address yet"), name: healthKey);
        return builder.AddResource(resource)
            .WithEndpoint(name: "tcp", scheme: "tcp", targetPort: null)
            .WithArgs(context =>
            {
                context.Args.Add("--port");
                context.Args.Add(resource.Endpoint.Property(EndpointProperty.TargetPort));
                context.Args.Add("--bind");
                context.Args.Add("127.0.0.1");
                context.Args.Add("--appendonly");
                context.Args.Add("yes");
                context.Args.Add("--save");
                context.Args.Add("");
                context.Args.Add("--dir");
                context.Args.Add(dataDirectory);
            })
            .WithHealthCheck(healthKey);
    }
}
