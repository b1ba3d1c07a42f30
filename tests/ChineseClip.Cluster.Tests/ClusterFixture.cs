using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Data.Demo;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;

namespace ChineseClip.Cluster.Tests;

/// <summary>One cluster for all functional tests (an AppHost start costs ~30 s): redis, the coordinator and two CPU
/// workers, without the embedded demo; small demo datasets in a temporary folder. The services send their traces to
/// <see cref="Telemetry"/>.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);

    public string Root { get; } = Directory.CreateTempSubdirectory("cnclip-cluster").FullName;
    public string Demo => Path.Combine(Root, "demo");
    public DistributedApplication App { get; private set; } = null!;
    public Coordinator.CoordinatorClient Client { get; private set; } = null!;
    /// <summary>The channel to the coordinator's gRPC endpoint (for other clients than <see cref="Client"/>).</summary>
    public GrpcChannel Channel { get; private set; } = null!;
    public OtlpReceiver Telemetry { get; } = new();

    /// <summary>A stage of the demo data with the tiny architecture, small enough to train in seconds.</summary>
    public Stage DemoStage(string name, string dataset, StageInit init, int epochs) => new()
    {
        Name = name,
        TrainData = Path.Combine(Demo, dataset),
        ValData = Path.Combine(Demo, dataset),
        Arch = Path.Combine(Demo, "tiny-arch.json"),
        Vocab = Path.Combine(Demo, "vocab.txt"),
        Init = init,
        Hyperparameters = { ["batch_size"] = "16", ["max_epochs"] = $"{epochs}", ["lr"] = "0.002", ["warmup"] = "2", ["log_interval"] = "2" },
    };

    public async Task InitializeAsync()
    {
        DemoDataGenerator.Generate(Demo, seed: 1, scale: 0.25);
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChineseClip_AppHost>(
            ["Cluster:Demo=false", $"Cluster:RunsDirectory={Path.Combine(Root, "runs")}", "Cluster:Workers=2", "Cluster:ThreadsPerWorker=1",
             "Cluster:Redis=executable"]);
        // Added after Aspire's own OTLP settings, so these win.
        foreach (var project in builder.Resources.OfType<ProjectResource>())
            project.Annotations.Add(new EnvironmentCallbackAnnotation((EnvironmentCallbackContext e) =>
            {
                foreach (var (key, value) in Telemetry.Environment) e.EnvironmentVariables[key] = value;
            }));
        App = await builder.BuildAsync().WaitAsync(Patience);
        CaptureLogs();
        await App.StartAsync().WaitAsync(Patience);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("coordinator").WaitAsync(Patience);
        Channel = GrpcChannel.ForAddress(App.GetEndpoint("coordinator", "grpc"));
        Client = new Coordinator.CoordinatorClient(Channel);
        await WaitForWorkers(2);
    }

    /// <summary>Each resource's console output, in LogDirectory/{resource}.log: what to read when a test fails.</summary>
    public static readonly string LogDirectory = Path.Combine(Path.GetTempPath(), "cnclip-cluster-logs");

    void CaptureLogs()
    {
        Directory.CreateDirectory(LogDirectory);
        var logs = App.Services.GetRequiredService<ResourceLoggerService>();
        var model = App.Services.GetRequiredService<DistributedApplicationModel>();
        foreach (var r in model.Resources) File.Delete(Path.Combine(LogDirectory, $"{r.Name}.log"));
        // Logs are kept per instance (the resource name plus a suffix, known once it is created), and the logger service
        // keeps each instance's backlog: so follow the notifications and watch every instance as it appears.
        var watched = new HashSet<string>();
        _ = Task.Run(async () =>
        {
            await foreach (var e in App.ResourceNotifications.WatchAsync())
            {
                if (e.Resource is not (ProjectResource or ExecutableResource) || !watched.Add(e.ResourceId)) continue;
                string path = Path.Combine(LogDirectory, $"{e.Resource.Name}.log");
                string instance = e.ResourceId;
                _ = Task.Run(async () =>
                {
                    await foreach (var batch in logs.WatchAsync(instance))
                        lock (LogDirectory) File.AppendAllLines(path, batch.Select(l => l.Content));
                });
            }
        });
    }

    /// <summary>The last error lines (and their stack frames) the workers logged: what a failed assertion should show,
    /// since CI keeps only the test output.</summary>
    public static string WorkerErrors(int max = 40)
    {
        var lines = new List<string>();
        foreach (string file in Directory.GetFiles(LogDirectory, "worker-*.log").Order())
        {
            string[] all;
            lock (LogDirectory) all = File.ReadAllLines(file);
            lines.AddRange(all.Where(l => l.Contains("fail", StringComparison.OrdinalIgnoreCase) || l.Contains("Exception") || l.TrimStart().StartsWith("at "))
                .Select(l => $"{Path.GetFileNameWithoutExtension(file)}: {l}"));
        }
        return lines.Count == 0 ? "(no worker errors logged)" : string.Join("\n", lines.TakeLast(max));
    }

    public async Task WaitForWorkers(int count)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            try
            {
                var workers = (await Client.ListWorkersAsync(new ListWorkersRequest())).Workers;
                if (workers.Count >= count && workers.All(w => w.BusyWith.Length == 0)) return;
            }
            catch (Grpc.Core.RpcException) { } // the coordinator may be restarting
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{count} free workers did not join the coordinator");
            await Task.Delay(500);
        }
    }

    /// <summary>Runs a two-stage schedule of the demo data (stage1-muge for 2 epochs from scratch, then stage2-flickr for
    /// one from the first stage's best checkpoint) to its end, which must be success.</summary>
    public async Task<(ScheduleStatus Submitted, ScheduleStatus Done)> RunTwoStages(string name, string first, string second)
    {
        var schedule = new Schedule { Name = name };
        schedule.Stages.Add(DemoStage(first, "stage1-muge", StageInit.InitScratch, 2));
        schedule.Stages.Add(DemoStage(second, "stage2-flickr", StageInit.InitBestOfPrevious, 1));
        var submitted = await Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = schedule });
        var done = await WaitUntilOver(submitted.Id);
        Assert.True(done.State == RunState.Succeeded, $"{done.State}: {done.Error}\n{WorkerErrors()}");
        return (submitted, done);
    }

    public async Task<ScheduleStatus> WaitUntilOver(string id)
    {
        // Polls rather than watches: a watch stream breaks when the coordinator restarts.
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var status = await Client.GetScheduleAsync(new GetScheduleRequest { Id = id });
                if (status.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled) return status;
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.Unavailable) { }
            await Task.Delay(500);
        }
        throw new TimeoutException($"schedule {id} did not end within {Patience.TotalMinutes} minutes");
    }

    public async Task DisposeAsync()
    {
        Channel?.Dispose();
        if (App is not null)
        {
            await App.StopAsync().WaitAsync(TimeSpan.FromMinutes(1));
            await App.DisposeAsync();
        }
        Telemetry.Dispose();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition("cluster")]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>;
