using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

public class RetrievalMetricsTests
{
    [Fact]
    public void Recall_counts_queries_with_any_hit_in_the_top_k()
    {
        // 12 candidates on a circle; query q points at candidate q, but relevant lists differ.
        var angles = Enumerable.Range(0, 12).Select(i => i * Math.PI / 6).ToArray();
        using var candidates = tensor(angles.SelectMany(a => new[] { (float)Math.Cos(a), (float)Math.Sin(a) }).ToArray(), [12, 2]);
        using var queries = candidates[..3].clone();
        IReadOnlyCollection<int>[] relevant = [[0], [4, 5, 6, 7, 8, 9, 10], [2, 7]];
        // Query 0 hits at rank 1; query 1's nearest relevant (4 or 10) are 3 steps away: ranks 6-7 -> R@10 only;
        // query 2 hits at rank 1.
        var recall = RetrievalMetrics.Compute(queries, candidates, relevant);
        Assert.Equal(200.0 / 3, recall.R1, 6);
        Assert.Equal(200.0 / 3, recall.R5, 6);
        Assert.Equal(100, recall.R10, 6);
        Assert.Equal((200.0 / 3 * 2 + 100) / 3, recall.Mean, 6);
    }
}
