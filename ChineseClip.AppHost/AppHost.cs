// The cluster, declared: redis (RedisExtensions.AddClusterRedis: a container, redis-server or the embedded Garnet,
// each keeping its data in the runs folder or a volume), the coordinator, N training workers, M preprocessors that turn
// each stage's training data into shards from the Redis queue (Cluster:Preprocessors=0: workers decode it), and, unless
// Cluster:Demo is false, the embedded demo: demo data, then its three-stage schedule submitted by `cnclip submit`.
// The search service (`search`) serves the collections under RUNS/search; in the demo it follows the coordinator and,
// when the schedule succeeds, serves its last stage's best checkpoint over the demo's stage-3 test images as `demo`.
// Settings: ClusterSettings. The coordinator, the workers, the preprocessors and the search service are healthy when
// their /health answers 200 (the coordinator's: schedules loaded from Redis; a preprocessor's: its Redis connection),
// so WaitFor(coordinator) waits for a coordinator that can schedule.
using ChineseClip.AppHost;

var builder = DistributedApplication.CreateBuilder(args);
ClusterSettings cluster;
try
{
    cluster = ClusterSettings.From(builder.Configuration, builder.AppHostDirectory);
}
catch (InvalidOperationException e)
{
    Console.Error.WriteLine($"ChineseClip.AppHost: error: {e.Message}");
    return 2;
}
string runs = cluster.RunsDirectory!;

var redis = builder.AddClusterRedis("redis", cluster.Redis, runs);

var coordinator = builder.AddProject<Projects.ChineseClip_Coordinator>("coordinator")
    .WithHttpHealthCheck("/health", endpointName: "http")
    .WithReference(redis).WaitFor(redis)
    .WithEnvironment("Coordinator__RunsDirectory", runs)
    .WithEnvironment("Coordinator__Token", cluster.Token);

for (int i = 0; i < cluster.Workers; i++)
{
    string name = $"worker-{i}";
    var worker = builder.AddProject<Projects.ChineseClip_Worker>(name)
        .WithHttpHealthCheck("/health", endpointName: "http")
        .WithReference(coordinator).WaitFor(coordinator)
        .WithEnvironment("Worker__Name", name)
        .WithEnvironment("Worker__Device", cluster.DeviceOf(i))
        .WithEnvironment("Worker__GpuIndex", i.ToString())
        .WithEnvironment("Worker__Threads", cluster.ThreadsPerWorker.ToString())
        .WithEnvironment("Worker__Token", cluster.Token);
    if (cluster.Preprocessors > 0) worker.WithReference(redis).WaitFor(redis);
}

for (int i = 0; i < cluster.Preprocessors; i++)
    builder.AddProject<Projects.ChineseClip_Preprocessor>($"preprocessor-{i}")
        .WithHttpHealthCheck("/health", endpointName: "http")
        .WithReference(redis).WaitFor(redis);

var search = builder.AddProject<Projects.ChineseClip_SearchService>("search")
    .WithHttpHealthCheck("/health", endpointName: "http")
    .WithReference(coordinator).WaitFor(coordinator)
    .WithEnvironment("Search__Directory", Path.Combine(runs, "search"))
    .WithEnvironment("Search__Token", cluster.Token);

if (cluster.Demo)
{
    string demoData = Path.Combine(runs, "demo-data");
    search.WithEnvironment("Search__Follow", "true")
        .WithEnvironment("Search__Collection", "demo")
        .WithEnvironment("Search__Images", Path.Combine(demoData, "stage3-private", "test_imgs.tsv"));
    var data = builder.AddProject<Projects.ChineseClip_Cli>("demo-data")
        .WithArgs("make-demo-data", "--output", demoData);
    builder.AddProject<Projects.ChineseClip_Cli>("demo-submit")
        .WithArgs("submit", Path.Combine(demoData, "demo-schedule.yaml"))
        .WithEnvironment("CNCLIP_COORDINATOR", coordinator.GetEndpoint("grpc"))
        .WithEnvironment("CNCLIP_TOKEN", cluster.Token)
        .WaitForCompletion(data).WaitFor(coordinator);
}

builder.Build().Run();
return 0;
