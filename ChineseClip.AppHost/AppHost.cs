// The cluster, declared: redis (a container where a container engine answers, else redis-server as an executable,
// else the embedded Garnet server project),
// the coordinator, N training workers (worker i on cuda:i where there is such a GPU, or as Cluster:Gpus says, else cpu), M preprocessors that turn
// each stage's training data into shards from the Redis queue (Cluster:Preprocessors=0: workers decode it), and, unless
// Cluster:Demo is false, the embedded demo: demo data, then its three-stage schedule submitted by `cnclip submit`.
// The search service (`search`) serves the collections under RUNS/search; in the demo it follows the coordinator and,
// when the schedule succeeds, serves its last stage's best checkpoint over the demo's stage-3 test images as `demo`.
// The coordinator and the workers are healthy when their /health answers 200 (the coordinator's: schedules loaded
// from Redis, Redis reachable), so WaitFor(coordinator) waits for a coordinator that can schedule. The preprocessors
// serve no HTTP: they count as healthy once running.
using System.Diagnostics;
using ChineseClip.AppHost;

var builder = DistributedApplication.CreateBuilder(args);
var config = builder.Configuration;
int workers = Setting("Cluster:Workers", 2);
int? gpus = config["Cluster:Gpus"] is null ? null : Setting("Cluster:Gpus", 0);
int preprocessors = Setting("Cluster:Preprocessors", 1);
bool demo = !string.Equals(config["Cluster:Demo"], "false", StringComparison.OrdinalIgnoreCase);
string runs = Path.GetFullPath(config["Cluster:RunsDirectory"] ?? Path.Combine(builder.AppHostDirectory, "..", "runs"));
string redisMode = config["Cluster:Redis"] ?? "auto";
string threadsPerWorker = Setting("Cluster:ThreadsPerWorker", Math.Max(1, Environment.ProcessorCount / Math.Max(1, workers))).ToString();

string redisKind = redisMode != "auto" ? redisMode
    : ContainerEngineAnswers() ? "container" : OnPath("redis-server") ? "executable" : "garnet";
IResourceBuilder<IResourceWithConnectionString> redis = redisKind switch
{
    "container" => builder.AddRedis("redis"),
    "executable" => builder.AddRedisServer("redis", Path.Combine(runs, ".redis")),
    "garnet" => builder.AddGarnetServer("redis", new Projects.ChineseClip_Garnet().ProjectPath),
    _ => throw new InvalidOperationException($"Cluster:Redis: '{redisMode}' is not auto, container, executable or garnet"),
};

var coordinator = builder.AddProject<Projects.ChineseClip_Coordinator>("coordinator")
    .WithHttpHealthCheck("/health", endpointName: "http")
    .WithReference(redis).WaitFor(redis)
    .WithEnvironment("Coordinator__RunsDirectory", runs)
    .WithEnvironment("Coordinator__Token", config["Cluster:Token"] ?? "");

for (int i = 0; i < workers; i++)
{
    // Cluster:Gpus set: workers below it on cuda:i, the rest on the CPU. Unset: each worker takes GPU i if its libtorch
    // sees one ("auto"), else the CPU.
    string name = $"worker-{i}", device = gpus is null ? "auto" : i < gpus ? $"cuda:{i}" : "cpu";
    var worker = builder.AddProject<Projects.ChineseClip_Worker>(name)
        .WithHttpHealthCheck("/health", endpointName: "http")
        .WithReference(coordinator).WaitFor(coordinator)
        .WithEnvironment("Worker__Name", name)
        .WithEnvironment("Worker__Device", device)
        .WithEnvironment("Worker__GpuIndex", i.ToString())
        .WithEnvironment("Worker__Threads", threadsPerWorker)
        .WithEnvironment("Worker__Token", config["Cluster:Token"] ?? "");
    if (preprocessors > 0) worker.WithReference(redis).WaitFor(redis);
}

for (int i = 0; i < preprocessors; i++)
    builder.AddProject<Projects.ChineseClip_Preprocessor>($"preprocessor-{i}").WithHttpHealthCheck("/health", endpointName: "http")
        .WithReference(redis).WaitFor(redis);

var search = builder.AddProject<Projects.ChineseClip_SearchService>("search")
    .WithHttpHealthCheck("/health", endpointName: "http")
    .WithReference(coordinator).WaitFor(coordinator)
    .WithEnvironment("Search__Directory", Path.Combine(runs, "search"))
    .WithEnvironment("Search__Token", config["Cluster:Token"] ?? "");

if (demo)
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
        .WithEnvironment("CNCLIP_TOKEN", config["Cluster:Token"] ?? "")
        .WaitForCompletion(data).WaitFor(coordinator);
}

builder.Build().Run();

int Setting(string key, int fallback)
{
    string? text = config[key];
    if (text is null) return fallback;
    return int.TryParse(text, out int value) && value >= 0 ? value : throw new InvalidOperationException($"{key}: '{text}' is not a whole number");
}

static bool OnPath(string program) =>
    (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, program)));

// `docker info` answers only when an engine runs; a CLI without a daemon fails fast.
static bool ContainerEngineAnswers()
{
    try
    {
        using var docker = Process.Start(new ProcessStartInfo("docker", "info") { RedirectStandardOutput = true, RedirectStandardError = true });
        if (docker is null) return false;
        if (!docker.WaitForExit(TimeSpan.FromSeconds(10))) { docker.Kill(); return false; }
        return docker.ExitCode == 0;
    }
    catch (System.ComponentModel.Win32Exception)
    {
        return false; // no docker CLI at all
    }
}
