// cnclip bench serve: a load test of the search service: C clients send text searches back to back for S seconds.
// One JSON line: queries/s, p50/p99 latency, errors.
using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using ChineseClip.Cli.Search;

namespace ChineseClip.Cli.Commands;

public static class BenchServeCommand
{
    /// <summary>Short Chinese queries (at most 12 characters), used when no --queries file is given.</summary>
    public static readonly string[] DefaultQueries =
    [
        "一只小狗", "草地上奔跑的狗", "雨后的城市街道", "红色的运动鞋", "海边的日落", "一碗热腾腾的面条", "穿白衬衫的男人", "夜晚的高楼",
        "两只猫在睡觉", "蓝色的汽车", "山顶看日出", "孩子们在踢足球", "一杯咖啡", "下雪的森林", "骑自行车的女孩", "桌上的苹果",
    ];

    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var url = new Option<string>("--url") { Description = "the search service, e.g. http://127.0.0.1:5292", Required = true };
        var collection = new Option<string?>("--collection") { Description = "the collection (default: the first the service lists)" };
        var concurrency = new Option<int>("--concurrency") { Description = "clients sending requests back to back", DefaultValueFactory = _ => 16 };
        var seconds = new Option<double>("--seconds") { Description = "how long to send", DefaultValueFactory = _ => 60 };
        var queries = new Option<FileInfo?>("--queries") { Description = "text queries, one per line (default: 16 short Chinese queries)" };
        var k = new Option<int>("--k") { Description = "results per query", DefaultValueFactory = _ => 10 };
        var deploy = new Option<string?>("--deploy") { Description = "a schedule id: a quarter of the way into the run, deploy its best checkpoint to the collection (load during a swap); reported under deploy" };
        var deployStage = new Option<string?>("--deploy-stage") { Description = "the stage to deploy (default: the schedule's last)" };
        var command = new Command("serve", "Load-test the search service with text queries; prints one JSON line.") { url, collection, concurrency, seconds, queries, k, deploy, deployStage };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            int clients = r.GetValue(concurrency), top = r.GetValue(k);
            double duration = r.GetValue(seconds);
            if (clients < 1) throw new CliException($"--concurrency {clients}: must be at least 1");
            if (!(duration > 0)) throw new CliException($"--seconds {duration}: must be positive");
            string[] texts = DefaultQueries;
            if (r.GetValue(queries) is { } file)
            {
                if (!file.Exists) throw new CliException($"{file.FullName}: queries file not found");
                texts = File.ReadLines(file.FullName).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
                if (texts.Length == 0) throw new CliException($"{file.FullName}: no queries in it");
            }
            // A generous timeout: the first request may wait for the service to load its model.
            using var client = new SearchServiceClient(r.GetValue(url), environment, TimeSpan.FromMinutes(5));
            string name = r.GetValue(collection) ?? FirstCollection(client);
            // One request first, so that the model is loaded before the clock starts.
            client.SendAsync(HttpMethod.Post, "/v1/search", new { collection = name, text = texts[0], k = top }).GetAwaiter().GetResult();

            var latencies = new List<double>();
            var failures = new Dictionary<string, int>();
            var clock = Stopwatch.StartNew();
            var deadline = TimeSpan.FromSeconds(duration);
            Task<DeployReport?> swap = r.GetValue(deploy) is { } scheduleId
                ? Task.Run<DeployReport?>(async () => await DeployDuringLoad(client, name, scheduleId, r.GetValue(deployStage), clock, deadline / 4))
                : Task.FromResult<DeployReport?>(null);
            async Task Client(int index)
            {
                for (int i = index; clock.Elapsed < deadline; i += clients)
                {
                    var watch = Stopwatch.StartNew();
                    string? failure = null;
                    try
                    {
                        using var response = await client.Http.PostAsJsonAsync("/v1/search", new { collection = name, text = texts[i % texts.Length], k = top });
                        await response.Content.ReadAsByteArrayAsync();
                        if (!response.IsSuccessStatusCode) failure = $"HTTP {(int)response.StatusCode}";
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        failure = e.GetType().Name;
                    }
                    lock (latencies)
                    {
                        if (failure is null) latencies.Add(watch.Elapsed.TotalMilliseconds);
                        else failures[failure] = failures.GetValueOrDefault(failure) + 1;
                    }
                }
            }
            Task.WaitAll(Enumerable.Range(0, clients).Select(i => Task.Run(() => Client(i))).ToArray());
            double elapsed = clock.Elapsed.TotalSeconds;
            DeployReport? swapped = swap.GetAwaiter().GetResult(); // a deploy may end after the load
            var sorted = latencies.Order().ToList();
            double Percentile(double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
            io.Out.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "serve", url = client.Address, collection = name, concurrency = clients, seconds = Math.Round(elapsed, 2),
                requests = sorted.Count + failures.Values.Sum(), qps = Math.Round(sorted.Count / elapsed, 1),
                p50_ms = Math.Round(Percentile(0.5), 2), p99_ms = Math.Round(Percentile(0.99), 2), errors = failures.Values.Sum(), error_kinds = failures,
                queries = texts.Length, deploy = swapped, cpu = BenchSearchCommand.CpuModel(),
            }, new JsonSerializerOptions
            {
                Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            }));
            return swapped is null or { State: "succeeded" } ? ExitCodes.Success : ExitCodes.Failure;
        }));
        return command;
    }

    /// <summary>What happened to a deploy started during the load (times in seconds from the start of the load).</summary>
    internal sealed record DeployReport(string ScheduleId, double StartedAtS, double EndedAtS, string State, int VersionBefore,
        int VersionAfter, string? Error);

    static async Task<DeployReport> DeployDuringLoad(SearchServiceClient client, string name, string scheduleId, string? stage, Stopwatch clock, TimeSpan after)
    {
        int before = (await client.CollectionAsync(name))?.GetProperty("version").GetInt32() ?? 0;
        await Task.Delay(after);
        double started = clock.Elapsed.TotalSeconds;
        try
        {
            await client.StartDeployAsync(name, scheduleId, stage);
        }
        catch (CliException e)
        {
            return new DeployReport(scheduleId, Math.Round(started, 2), Math.Round(clock.Elapsed.TotalSeconds, 2), "refused", before, before, e.Message);
        }
        var served = await client.WaitForDeployAsync(name);
        var state = served.GetProperty("deploy");
        return new DeployReport(scheduleId, Math.Round(started, 2), Math.Round(clock.Elapsed.TotalSeconds, 2), state.GetProperty("state").GetString()!,
            before, served.GetProperty("version").GetInt32(), state.TryGetProperty("error", out var e2) ? e2.GetString() : null);
    }

    static string FirstCollection(SearchServiceClient client)
    {
        var list = client.SendAsync(HttpMethod.Get, "/v1/collections").GetAwaiter().GetResult();
        return list.GetProperty("collections").EnumerateArray().Select(c => c.GetProperty("name").GetString()).FirstOrDefault()
            ?? throw new CliException($"the search service at {client.Address} serves no collection");
    }
}
