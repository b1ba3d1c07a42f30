// Retrieval recall as the official evaluation computes it: R@K is the share of queries with any ground-truth id among
// the top K; mean recall is the mean of R@1, R@5 and R@10. Reported x100 like the official JSON.
using static TorchSharp.torch;

namespace ChineseClip.Training;

public sealed record Recall(double R1, double R5, double R10)
{
    public double Mean => (R1 + R5 + R10) / 3;
}

public static class RetrievalMetrics
{
    /// <summary>Recall of queries against candidates (rows are L2-normalised features); relevant[q] lists the
    /// candidate indices that count as hits for query q.</summary>
    public static Recall Compute(Tensor queries, Tensor candidates, IReadOnlyList<IReadOnlyCollection<int>> relevant)
    {
        using var scope = NewDisposeScope();
        int k = (int)Math.Min(10, candidates.shape[0]);
        long[] top = queries.matmul(candidates.t()).topk(k, dim: 1).indexes.contiguous().data<long>().ToArray();
        int hits1 = 0, hits5 = 0, hits10 = 0;
        for (int q = 0; q < relevant.Count; q++)
        {
            int first = int.MaxValue;
            for (int r = 0; r < k; r++)
                if (relevant[q].Contains((int)top[q * k + r])) { first = r; break; }
            if (first < 1) hits1++;
            if (first < 5) hits5++;
            if (first < 10) hits10++;
        }
        double n = relevant.Count;
        return new Recall(100 * hits1 / n, 100 * hits5 / n, 100 * hits10 / n);
    }
}
