namespace ChineseClip.Search.Tests;

public class HnswIndexTests
{
    internal static float[][] Clustered(int count, int dim, int clusters, int seed)
    {
        var random = new Random(seed);
        var centers = Enumerable.Range(0, clusters).Select(_ => Normalise(Enumerable.Range(0, dim).Select(_ => (float)Gaussian(random)).ToArray())).ToArray();
        return Enumerable.Range(0, count).Select(i =>
            Normalise(centers[i % clusters].Select(c => c + 0.3f * (float)Gaussian(random) / MathF.Sqrt(dim)).ToArray())).ToArray();
    }

    static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    static float[] Normalise(float[] v)
    {
        float n = MathF.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / n).ToArray();
    }

    [Fact]
    public void Adds_on_several_threads_keep_every_vector_and_find_each_one_first()
    {
        Assert.True(HnswIndex.ParallelAdds, "the USearch binding's native handle was not found: adds would run on one thread");
        var rows = Clustered(2000, 32, 20, seed: 1);
        using var index = HnswIndex.Create(32, new HnswSettings());
        long[] keys = Enumerable.Range(0, rows.Length).Select(i => 1_000_000L + i * 7).ToArray();
        index.Add(keys, i => rows[i], threads: 4);

        Assert.Equal(rows.Length, index.Count);
        int first = 0;
        for (int i = 0; i < rows.Length; i += 10)
        {
            var (found, scores) = index.Search(rows[i], 1);
            if (found[0] != keys[i]) continue; // HNSW is approximate: a close neighbour may come first
            first++;
            Assert.InRange(scores[0], 0.999f, 1.0001f);
        }
        Assert.True(first >= 195, $"{first} of 200 vectors found themselves first");
    }

    // Recall counts a found item as a true neighbour when its exact score is within the quantization's rounding
    // of the 10th best: clustered vectors have near-ties that bf16 or i8 cannot order, and which of them the index
    // returns changes from run to run with the order of the parallel adds (plain recall@10 of bf16 ranged
    // 0.89-0.95 over runs of this test, and a clean-clone CI run failed at 0.892; counted this way it was 0.96-0.97).
    [Theory]
    [InlineData("bf16", 0.005, 0.9)]
    [InlineData("i8", 0.02, 0.9)]
    public void A_quantized_index_saves_loads_and_finds_the_exact_neighbours(string quantization, double tolerance, double minimumRecall)
    {
        var rows = Clustered(3000, 64, 30, seed: 5);
        var queries = Clustered(50, 64, 30, seed: 6);
        long[] keys = Enumerable.Range(0, rows.Length).Select(i => (long)i).ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"hnsw-{quantization}-{Guid.NewGuid():N}.usearch");
        try
        {
            using (var built = HnswIndex.Create(64, new HnswSettings(Quantization: quantization)))
            {
                built.Add(keys, i => rows[i], threads: 2);
                built.Save(path);
            }
            using var index = HnswIndex.Load(path);
            double recall = 0;
            foreach (var q in queries)
            {
                float[] exact = rows.Select(r => r.Zip(q, (a, b) => a * b).Sum()).ToArray();
                float tenth = exact.OrderByDescending(x => x).ElementAt(9);
                var (found, scores) = index.Search(q, 10);
                Assert.Equal(10, found.Length);
                Assert.Equal(10, found.Distinct().Count());
                Assert.All(scores, s => Assert.InRange(s, -1.05f, 1.05f));
                recall += found.Count(k => exact[k] >= tenth - tolerance) / 10.0;
            }
            Assert.True(recall / queries.Length >= minimumRecall, $"{quantization}: recall@10 {recall / queries.Length:F3} within {tolerance} of the 10th best score");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void The_search_expansion_is_set_again_after_a_load()
    {
        var rows = Clustered(200, 16, 4, seed: 7);
        string path = Path.Combine(Path.GetTempPath(), $"hnsw-expansion-{Guid.NewGuid():N}.usearch");
        try
        {
            using (var built = HnswIndex.Create(16, new HnswSettings(ExpansionSearch: 200)))
            {
                Assert.Equal(200, built.ExpansionSearch);
                built.Add(Enumerable.Range(0, rows.Length).Select(i => (long)i).ToArray(), i => rows[i], threads: 1);
                built.Save(path);
            }
            using var index = HnswIndex.Load(path);
            Assert.True(index.SetExpansionSearch(300));
            Assert.Equal(300, index.ExpansionSearch);
            Assert.Equal(10, index.Search(rows[0], 10).Keys.Length);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void An_unknown_quantization_is_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => HnswIndex.Create(8, new HnswSettings(Quantization: "f8")));
        Assert.Contains("'f8'", e.Message);
    }

    [Fact]
    public void Many_threads_may_search_at_once()
    {
        var rows = Clustered(500, 16, 10, seed: 3);
        string dir = Fixtures.TempDir("hnsw-threads");
        using (var built = HnswIndex.Create(16, new HnswSettings()))
        {
            built.Add(Enumerable.Range(0, rows.Length).Select(i => (long)i).ToArray(), i => rows[i], threads: 2);
            built.Save(Path.Combine(dir, "x.usearch"));
        }
        using var index = HnswIndex.Load(Path.Combine(dir, "x.usearch")); // as the service loads it
        // More searching threads than the machine has cores (USearch keeps one scratch slot per hardware thread).
        int wrong = 0;
        var threads = Enumerable.Range(0, 4 * Environment.ProcessorCount + 4).Select(t => new Thread(() =>
        {
            for (int i = 0; i < 300; i++)
                if (index.Search(rows[(t * 31 + i) % rows.Length], 3).Keys.Length != 3) Interlocked.Increment(ref wrong);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(0, wrong);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_saved_index_loads_with_the_same_answers_and_a_removed_key_is_gone()
    {
        var rows = Clustered(300, 16, 5, seed: 2);
        string dir = Fixtures.TempDir("hnsw");
        using (var index = HnswIndex.Create(16, new HnswSettings()))
        {
            index.Add(Enumerable.Range(0, 300).Select(i => (long)i).ToArray(), i => rows[i], threads: 2);
            index.Save(Path.Combine(dir, "x.usearch"));
        }
        using var loaded = HnswIndex.Load(Path.Combine(dir, "x.usearch"));
        Assert.Equal(42, loaded.Search(rows[42], 1).Keys[0]);
        loaded.Remove(42);
        Assert.DoesNotContain(42L, loaded.Search(rows[42], 5).Keys);
        Directory.Delete(dir, true);
    }
}
