// Redis without a container engine: Debian's redis-server, or the embedded Garnet server project, run as an executable
// resource that exposes the same connection string a Redis container would, so services use AddRedisClient("redis")
// either way. The extensions that declare it (and choose among the three) are in RedisExtensions.cs.
using Aspire.Hosting.ApplicationModel;

namespace ChineseClip.AppHost;

public sealed class RedisServerResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    EndpointReference? _endpoint;
    public EndpointReference Endpoint => _endpoint ??= new(this, "tcp");

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{Endpoint.Property(EndpointProperty.Host)}:{Endpoint.Property(EndpointProperty.Port)}");
}
