using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class BenchSearchCommandTests
{
    [Fact]
    public void Prints_one_json_line_with_recall_and_both_latencies()
    {
        var r = CliRunner.Run("bench", "search", "--vectors", "2000", "--dim", "32", "--queries", "50", "--clusters", "20", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Single(r.OutLines);
        using var json = JsonDocument.Parse(r.OutLines[0]);
        var root = json.RootElement;
        Assert.Equal(2000, root.GetProperty("vectors").GetInt32());
        Assert.InRange(root.GetProperty("recall_at_k").GetDouble(), 0.9, 1.0);
        foreach (string key in new[] { "build_seconds", "hnsw_qps", "hnsw_p50_ms", "hnsw_p99_ms", "exact_qps", "exact_p50_ms", "exact_p99_ms" })
            Assert.True(root.GetProperty(key).GetDouble() > 0, key);
    }

    [Fact]
    public void K_above_the_vector_count_is_refused()
    {
        var r = CliRunner.Run("bench", "search", "--vectors", "5", "--k", "10");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--k 10", r.Error);
    }
}
