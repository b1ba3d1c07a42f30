using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Grpc.Health.V1;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChineseClip.Cluster.Tests;

/// <summary>What "healthy" means in the cluster: the AppHost polls the HTTP /health of the coordinator, the workers and the preprocessors
/// (without a health check a resource counts as healthy merely by running), and the coordinator answers gRPC health.</summary>
[Collection("cluster")]
public sealed class HealthTests(ClusterFixture cluster)
{
    [Fact]
    public async Task The_coordinator_answers_grpc_health_checks_with_serving()
    {
        var reply = await new Health.HealthClient(cluster.Channel).CheckAsync(new HealthCheckRequest { Service = "" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    [Theory]
    [InlineData("coordinator")]
    [InlineData("worker-0")]
    [InlineData("worker-1")]
    [InlineData("preprocessor-0")]
    public async Task The_apphost_polls_the_http_health_endpoint_and_it_answers_healthy(string resource)
    {
        await cluster.App.ResourceNotifications.WaitForResourceHealthyAsync(resource).WaitAsync(ClusterFixture.Patience);
        Assert.True(cluster.App.ResourceNotifications.TryGetCurrentState(resource, out var state), resource);
        var reports = state.Snapshot.HealthReports;
        Assert.NotEmpty(reports); // none: no health check registered, healthy only by running
        Assert.All(reports, r => Assert.Equal(HealthStatus.Healthy, r.Status));

        using var http = cluster.App.CreateHttpClient(resource, "http");
        using var response = await http.GetAsync("/health");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }
}
