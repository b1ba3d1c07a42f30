using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class BenchServeCommandTests
{
    [Fact]
    public async Task Prints_queries_per_second_latencies_and_counts_errors()
    {
        await using var search = await FakeSearchService.StartAsync();
        search.FailEvery = 5;
        string queries = Path.Combine(Directory.CreateTempSubdirectory("bench-serve").FullName, "q.txt");
        File.WriteAllText(queries, "小狗\n\n城市夜景\n");
        var r = CliRunner.Run("bench", "serve", "--url", search.Address, "--concurrency", "4", "--seconds", "2", "--queries", queries);
        Assert.True(r.ExitCode == 0, r.Error);
        using var json = JsonDocument.Parse(r.OutLines.Single());
        var root = json.RootElement;
        Assert.Equal("demo", root.GetProperty("collection").GetString());
        Assert.Equal(4, root.GetProperty("concurrency").GetInt32());
        Assert.Equal(2, root.GetProperty("queries").GetInt32());
        int requests = root.GetProperty("requests").GetInt32(), errors = root.GetProperty("errors").GetInt32();
        Assert.True(requests >= 5, $"{requests} requests"); // a loaded test machine may answer only a few per second
        Assert.InRange(errors, requests / 5 - 2, requests / 5 + 2);
        Assert.True(root.GetProperty("qps").GetDouble() > 0);
        Assert.True(root.GetProperty("p99_ms").GetDouble() >= root.GetProperty("p50_ms").GetDouble());
        var texts = search.Requests.Where(q => q.Path == "/v1/search").Select(q => JsonDocument.Parse(q.Body).RootElement.GetProperty("text").GetString()).ToHashSet();
        Assert.Equal(new HashSet<string?> { "小狗", "城市夜景" }, texts);
    }

    [Fact]
    public void Zero_concurrency_is_refused()
    {
        var r = CliRunner.Run("bench", "serve", "--url", "http://127.0.0.1:1", "--concurrency", "0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--concurrency 0", r.Error);
    }
}
