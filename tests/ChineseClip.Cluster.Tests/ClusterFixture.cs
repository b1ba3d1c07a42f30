using Aspire.Hosting;
using Aspire.Hosting.Testing;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Data.Demo;
using Grpc.Net.Client;

namespace ChineseClip.Cluster.Tests;

/// <summary>One cluster for all functional tests (an AppHost start costs ~30 s): redis, the coordinator and two CPU
/// workers, without the embedded demo; small demo datasets in a temporary folder.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);

    public string Root { get; } = Directory.CreateTempSubdirectory("cnclip-cluster").FullName;
    public string Demo => Path.Combine(Root, "demo");
    public DistributedApplication App { get; private set; } = null!;
    public Coordinator.CoordinatorClient Client { get; private set; } = null!;
    GrpcChannel? _channel;

    public async Task InitializeAsync()
    {
        DemoDataGenerator.Generate(Demo, seed: 1, scale: 0.25);
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChineseClip_AppHost>(
            ["Cluster:Demo=false", $"Cluster:RunsDirectory={Path.Combine(Root, "runs")}", "Cluster:Workers=2", "Cluster:ThreadsPerWorker=1",
             "Cluster:Redis=executable"]);
        App = await builder.BuildAsync().WaitAsync(Patience);
        await App.StartAsync().WaitAsync(Patience);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("coordinator").WaitAsync(Patience);
        _channel = GrpcChannel.ForAddress(App.GetEndpoint("coordinator", "grpc"));
        Client = new Coordinator.CoordinatorClient(_channel);
        var deadline = DateTime.UtcNow + Patience;
        while ((await Client.ListWorkersAsync(new ListWorkersRequest())).Workers.Count < 2)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the two workers did not join the coordinator");
            await Task.Delay(500);
        }
    }

    public async Task<ScheduleStatus> WaitUntilOver(string id)
    {
        using var cancel = new CancellationTokenSource(Patience);
        ScheduleStatus last = null!;
        using var watch = Client.WatchSchedule(new GetScheduleRequest { Id = id }, cancellationToken: cancel.Token);
        while (await watch.ResponseStream.MoveNext(cancel.Token)) last = watch.ResponseStream.Current;
        return last;
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (App is not null)
        {
            await App.StopAsync().WaitAsync(TimeSpan.FromMinutes(1));
            await App.DisposeAsync();
        }
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition("cluster")]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>;
