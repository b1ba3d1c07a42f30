using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using ChineseClip.Contracts.Coordinator;
using Grpc.Core;
using Grpc.Net.Client;

namespace ChineseClip.Cluster.Tests;

/// <summary>`dotnet run --project ChineseClip.AppHost` as a new user starts it (the http launch profile: dashboard on
/// :15888, coordinator on :5290), with the embedded demo on: the demo schedule must succeed and the dashboard's
/// telemetry API must show spans and metrics from every service. Redis is the embedded Garnet server here, the
/// fallback of a machine with only the .NET SDK (the shared fixture runs redis-server).</summary>
[Collection("cluster")]
public sealed class UserRunTests(ClusterFixture cluster) : IDisposable
{
    readonly string _runs = Directory.CreateTempSubdirectory("cnclip-user-run").FullName;
    Process? _apphost;


    [Fact]
    public async Task Dotnet_run_of_the_apphost_runs_the_demo_schedule_and_the_dashboard_shows_every_service()
    {
        _ = cluster; // shares the collection only to run alone
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "run", "--no-build", "--project", Path.Combine(ServiceProcesses.RepositoryRoot(), "ChineseClip.AppHost"), "--",
            $"Cluster:RunsDirectory={_runs}", "Cluster:Redis=garnet" })
            start.ArgumentList.Add(a);
        _apphost = Process.Start(start)!;
        string log = Path.Combine(ClusterFixture.LogDirectory, "user-run-apphost.log");
        Directory.CreateDirectory(ClusterFixture.LogDirectory);
        File.WriteAllText(log, "");
        _apphost.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) File.AppendAllText(log, e.Data + "\n"); };
        _apphost.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) File.AppendAllText(log, e.Data + "\n"); };
        _apphost.BeginOutputReadLine();
        _apphost.BeginErrorReadLine();

        using var channel = GrpcChannel.ForAddress("http://127.0.0.1:5290");
        var client = new Coordinator.CoordinatorClient(channel);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        ScheduleStatus? demo = null;
        while (demo?.State is not (RunState.Succeeded or RunState.Failed or RunState.Cancelled))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the demo schedule did not end within 10 minutes (last: {demo?.State}); see {log}");
            Assert.False(_apphost.HasExited, $"the AppHost exited with {(_apphost.HasExited ? _apphost.ExitCode : 0)}; see {log}");
            try
            {
                demo = (await client.ListSchedulesAsync(new ListSchedulesRequest())).Schedules.FirstOrDefault(s => s.Schedule.Name == "demo");
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable) { }
            await Task.Delay(1000);
        }
        Assert.True(demo.State == RunState.Succeeded, $"{demo.State}: {demo.Error}");
        Assert.Equal(3, demo.Stages.Count(s => s.State == RunState.Succeeded));
        Assert.True(GarnetRuns(), "no ChineseClip.Garnet process: the demo ran on another redis");
        Assert.Equal(demo.Stages[0].BestCheckpoint, demo.Stages[1].InitCheckpoint);
        Assert.Equal(demo.Stages[1].BestCheckpoint, demo.Stages[2].InitCheckpoint);
        // The demo data is learnable: every stage's last validation is well above chance (100 validation images:
        // text->image R@10 by chance is 10).
        string recalls = string.Join("; ", demo.Stages.Select(s => $"{s.Name} t2i {string.Join("/", s.Progress.T2IRecall)}"));
        Assert.All(demo.Stages, s => Assert.True(s.Progress.T2IRecall.Count == 3 && s.Progress.T2IRecall[2] >= 30, recalls));
        Console.WriteLine($"demo recall: {recalls}");

        // The search service (http://127.0.0.1:5292, the launch profile's port) follows the coordinator: the demo ends
        // with collection "demo" served from stage 3's best checkpoint, and a text query answers.
        using var search = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:5292"), Timeout = TimeSpan.FromSeconds(30) };
        JsonElement served = default;
        var searchDeadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            try
            {
                var list = await search.GetFromJsonAsync<JsonElement>("/v1/collections");
                served = list.GetProperty("collections").EnumerateArray().FirstOrDefault(c => c.GetProperty("name").GetString() == "demo");
                if (served.ValueKind == JsonValueKind.Object && served.GetProperty("model").ValueKind == JsonValueKind.Object
                    && served.GetProperty("model").GetProperty("schedule").GetString() == demo.Id) break;
            }
            catch (HttpRequestException) { /* not up yet */ }
            Assert.True(DateTime.UtcNow < searchDeadline, $"collection demo not served from schedule {demo.Id} within 3 minutes (last: {served}); see {log}");
            await Task.Delay(1000);
        }
        Assert.Equal(demo.Stages[2].BestCheckpoint, served.GetProperty("model").GetProperty("checkpoint").GetString());
        Assert.Equal(demo.Stages[2].Name, served.GetProperty("model").GetProperty("stage").GetString());
        Assert.True(served.GetProperty("count").GetInt32() >= 10);
        var answer = await (await search.PostAsJsonAsync("/v1/search", new { collection = "demo", text = "红色的圆", k = 5 })).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(5, answer.GetProperty("results").GetArrayLength());

        using var http = new HttpClient { BaseAddress = new Uri("http://localhost:15888") };
        var resources = await http.GetFromJsonAsync<JsonElement>("/api/telemetry/resources");
        foreach (string service in new[] { "coordinator", "worker-0", "worker-1", "preprocessor-0" })
        {
            var r = resources.EnumerateArray().FirstOrDefault(x => x.GetProperty("name").GetString() == service);
            Assert.True(r.ValueKind == JsonValueKind.Object, $"{service} sent no telemetry");
            Assert.True(r.GetProperty("hasTraces").GetBoolean(), $"{service} has no traces");
            Assert.True(r.GetProperty("hasMetrics").GetBoolean(), $"{service} has no metrics");
        }
        // Each service's own spans (the traces list is capped, hence the filter and a high limit).
        foreach (var (service, span) in new[] { ("coordinator", "stage stage1-muge"), ("worker-0", "train stage"), ("preprocessor-0", "preprocess shard") })
            Assert.Contains($"\"{span}\"", await http.GetStringAsync($"/api/telemetry/traces?resource={service}&limit=100000"));
    }

    static bool GarnetRuns() => Directory.EnumerateDirectories("/proc").Any(d =>
    {
        try
        {
            return Path.GetFileName(d).All(char.IsDigit) && File.ReadAllText(Path.Combine(d, "cmdline")).Contains("ChineseClip.Garnet", StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    });

    public void Dispose()
    {
        if (_apphost is { HasExited: false })
        {
            // SIGTERM: the AppHost stops its resources (DCP) before it exits; SIGKILL would leave them running.
            Process.Start("kill", ["-TERM", $"{_apphost.Id}"])!.WaitForExit();
            if (!_apphost.WaitForExit(TimeSpan.FromSeconds(60))) _apphost.Kill(entireProcessTree: true);
        }
        _apphost?.Dispose();
        try { Directory.Delete(_runs, recursive: true); } catch (IOException) { }
    }
}
