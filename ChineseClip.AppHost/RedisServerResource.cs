// Redis without a container engine: Debian's redis-server, or (when even that is missing) the embedded Garnet server
// project, run as an executable resource exposing the same connection string a Redis container would, so services use
// AddRedisClient("redis") either way.
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;

namespace ChineseClip.AppHost;

public sealed class RedisServerResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
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
        return builder.AddRedisCompatible(new RedisServerResource(name, "redis-server", dataDirectory), port =>
            ["--port", port, "--bind", "127.0.0.1", "--appendonly", "yes", "--save", "", "--dir", dataDirectory]);
    }

    /// <summary>The ChineseClip.Garnet project (Microsoft Garnet in-process), in memory: schedules survive a
    /// coordinator restart, not a restart of the whole AppHost.</summary>
    public static IResourceBuilder<RedisServerResource> AddGarnetServer(this IDistributedApplicationBuilder builder, string name, string projectPath)
    {
        string project = Path.GetDirectoryName(projectPath)!;
        return builder.AddRedisCompatible(new RedisServerResource(name, "dotnet", project), port =>
            ["run", "--no-build", "--project", projectPath, "--", "--port", port, "--bind", "127.0.0.1", "--memory", "256m", "--index", "16m"]);
    }

    static IResourceBuilder<RedisServerResource> AddRedisCompatible(this IDistributedApplicationBuilder builder, RedisServerResource resource,
        Func<object, object[]> arguments)
    {
        string healthKey = $"{resource.Name}_check";
        string? connectionString = null;
        builder.Eventing.Subscribe<ConnectionStringAvailableEvent>(resource, async (_, cancel) =>
            connectionString = await resource.ConnectionStringExpression.GetValueAsync(cancel));
        builder.Services.AddHealthChecks().AddRedis(_ => connectionString ?? throw new InvalidOperationException($"{resource.Name} has no address yet"), name: healthKey);
        return builder.AddResource(resource)
            .WithEndpoint(name: "tcp", scheme: "tcp", targetPort: null)
            .WithArgs(context =>
            {
                foreach (object a in arguments(resource.Endpoint.Property(EndpointProperty.TargetPort))) context.Args.Add(a);
            })
            .WithHealthCheck(healthKey);
    }
}
