// cnclip bench search: HNSW (USearch) against exact search (one BLAS matrix product over every vector) on synthetic
// L2-normalised vectors: by default a mixture of Gaussian clusters (real embeddings cluster), or uniform on the sphere
// (the worst case for a graph index). One JSON line: build time, recall@k of HNSW against exact, queries/s and
// p50/p99 latency of both, one query at a time.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Model.Towers;
using ChineseClip.Search;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class BenchSearchCommand
{
    /// <summary>Noise of a clustered vector around its centre (the norm of the added Gaussian, before normalising):
    /// two members of one cluster then have a cosine near 0.8, as related CLIP embeddings do.</summary>
    const double ClusterSigma = 0.5;

    public static Command Create(CliIO io)
    {
        var vectors = new Option<int>("--vectors") { Description = "vectors in the index", Required = true };
        var dim = new Option<int>("--dim") { Description = "dimension", DefaultValueFactory = _ => 512 };
        var queries = new Option<int>("--queries") { Description = "queries (drawn like the vectors, not among them)", DefaultValueFactory = _ => 1000 };
        var k = new Option<int>("--k") { Description = "results per query", DefaultValueFactory = _ => 10 };
        var data = new Option<string>("--data") { Description = "clustered (1,000 Gaussian clusters) or uniform", DefaultValueFactory = _ => "clustered" }
            .AcceptOnlyFromAmongFluent("clustered", "uniform");
        var clusters = new Option<int>("--clusters") { Description = "clusters of the clustered data", DefaultValueFactory = _ => 1000 };
        var threads = new Option<int>("--threads") { Description = "threads for the build and the exact matrix product", DefaultValueFactory = _ => Environment.ProcessorCount };
        var connectivity = new Option<int>("--connectivity") { Description = "HNSW graph degree", DefaultValueFactory = _ => new HnswSettings().Connectivity };
        var expansionAdd = new Option<int>("--expansion-add") { Description = "HNSW candidates while adding", DefaultValueFactory = _ => new HnswSettings().ExpansionAdd };
        var expansionSearch = new Option<int>("--expansion-search") { Description = "HNSW candidates while searching", DefaultValueFactory = _ => new HnswSettings().ExpansionSearch };
        var quantization = new Option<string>("--quantization") { Description = "how the HNSW index stores vectors: f32, bf16 or i8", DefaultValueFactory = _ => new HnswSettings().Quantization }
            .AcceptOnlyFromAmongFluent(HnswSettings.Quantizations);
        var sweep = new Option<string?>("--sweep-expansion") { Description = "more search expansions to time on the same index after the first, e.g. 128,256 (reported under sweep)" };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 1 };
        var command = new Command("search", "HNSW vs exact search on synthetic vectors; prints one JSON line.")
        {
            vectors, dim, queries, k, data, clusters, threads, connectivity, expansionAdd, expansionSearch, quantization, sweep, seed,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            int n = r.GetValue(vectors), d = r.GetValue(dim), q = r.GetValue(queries), top = r.GetValue(k), t = r.GetValue(threads), c = r.GetValue(clusters);
            if (n < 1 || d < 1 || q < 1 || top < 1 || t < 1 || c < 1) throw new CliException("--vectors, --dim, --queries, --k, --clusters and --threads must be at least 1");
            if (top > n) throw new CliException($"--k {top}: more than the {n} vectors");
            int[] sweepValues = ParseSweep(r.GetValue(sweep));
            var settings = new HnswSettings(r.GetValue(connectivity), r.GetValue(expansionAdd), r.GetValue(expansionSearch), r.GetValue(quantization)!);
            Model.Runtime.TorchCpu.SetThreads(t);
            manual_seed(r.GetValue(seed));
            bool clustered = r.GetValue(data) == "clustered";
            using Tensor centres = clustered ? nn.functional.normalize(randn(c, d), dim: 1) : empty(0);
            Tensor Draw(int count)
            {
                using var scope = NewDisposeScope();
                using Scalar sigma = ClusterSigma / Math.Sqrt(d);
                Tensor x = clustered
                    ? Sum.Of(centres.index_select(0, randint(c, count)), randn(count, d) * sigma)
                    : randn(count, d);
                return nn.functional.normalize(x, dim: 1).MoveToOuterDisposeScope();
            }

            // The vectors, drawn in chunks straight into one matrix (at 1,000,000 x 512 it holds 2 GB).
            Tensor matrix = empty(n, d);
            for (int start = 0; start < n; start += 65536)
            {
                int count = Math.Min(65536, n - start);
                using var chunk = Draw(count);
                using var slice = matrix.narrow(0, start, count);
                slice.copy_(chunk);
            }
            float[] queryRows;
            using (var qs = Draw(q)) queryRows = qs.contiguous().data<float>().ToArray();

            var watch = Stopwatch.StartNew();
            var hnsw = HnswIndex.Create(d, settings);
            long[] ids = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
            hnsw.Add(ids, i =>
            {
                var row = new float[d];
                matrix.data<float>().CopyTo(row, 0, (long)i * d);
                return row;
            }, t);
            double buildSeconds = watch.Elapsed.TotalSeconds;
            using var index = new VectorIndex(ids, matrix, hnsw);

            var exactLatency = new double[q];
            var hnswLatency = new double[q];
            var truths = new long[q][];
            double recall = 0;
            // Alternate the two per query so that the machine's load falls on both alike.
            for (int i = 0; i < q; i++)
            {
                float[] query = queryRows.AsSpan(i * d, d).ToArray();
                var w = Stopwatch.StartNew();
                var truth = index.Search(query, top, exact: true);
                exactLatency[i] = w.Elapsed.TotalMilliseconds;
                w.Restart();
                var approximate = index.Search(query, top, exact: false);
                hnswLatency[i] = w.Elapsed.TotalMilliseconds;
                truths[i] = truth.Select(h => h.Id).ToArray();
                recall += approximate.Select(h => h.Id).Intersect(truths[i]).Count() / (double)top;
            }
            double Percentile(double[] values, double p) => values.Order().ElementAt(Math.Min(values.Length - 1, (int)(p * values.Length)));
            double exactQps = q / (exactLatency.Sum() / 1000), hnswQps = q / (hnswLatency.Sum() / 1000);
            // The same index and the same exact answers, searched again with wider candidate lists.
            var sweepResults = sweepValues.Select(expansion =>
            {
                if (!hnsw.SetExpansionSearch(expansion)) throw new CliException("--sweep-expansion: this USearch binding cannot change the expansion");
                var latency = new double[q];
                double hits = 0;
                for (int i = 0; i < q; i++)
                {
                    float[] query = queryRows.AsSpan(i * d, d).ToArray();
                    var w = Stopwatch.StartNew();
                    var approximate = index.Search(query, top, exact: false);
                    latency[i] = w.Elapsed.TotalMilliseconds;
                    hits += approximate.Select(h => h.Id).Intersect(truths[i]).Count() / (double)top;
                }
                double qps = q / (latency.Sum() / 1000);
                return new
                {
                    expansion_search = expansion, recall_at_k = Math.Round(hits / q, 4), hnsw_qps = Math.Round(qps, 1),
                    hnsw_p50_ms = Math.Round(Percentile(latency, 0.5), 3), hnsw_p99_ms = Math.Round(Percentile(latency, 0.99), 3),
                    qps_ratio = Math.Round(qps / exactQps, 1),
                };
            }).ToArray();
            io.Out.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "search", vectors = n, dim = d, data = r.GetValue(data), clusters = clustered ? c : 0, cluster_sigma = clustered ? ClusterSigma : 0,
                queries = q, k = top, threads = t, connectivity = settings.Connectivity, expansion_add = settings.ExpansionAdd,
                expansion_search = settings.ExpansionSearch, quantization = settings.Quantization, build_seconds = Math.Round(buildSeconds, 2),
                build_vectors_per_s = Math.Round(n / buildSeconds, 1), recall_at_k = Math.Round(recall / q, 4),
                hnsw_qps = Math.Round(hnswQps, 1), hnsw_p50_ms = Math.Round(Percentile(hnswLatency, 0.5), 3), hnsw_p99_ms = Math.Round(Percentile(hnswLatency, 0.99), 3),
                exact_qps = Math.Round(exactQps, 1), exact_p50_ms = Math.Round(Percentile(exactLatency, 0.5), 3), exact_p99_ms = Math.Round(Percentile(exactLatency, 0.99), 3),
                qps_ratio = Math.Round(hnswQps / exactQps, 1), sweep = sweepResults, cpu = CpuModel(),
            }));
            return ExitCodes.Success;
        }));
        return command;
    }

    static int[] ParseSweep(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        return text.Split(',', StringSplitOptions.TrimEntries).Select(v =>
            int.TryParse(v, out int e) && e >= 1 ? e : throw new CliException($"--sweep-expansion: '{v}' is not a whole number of at least 1")).ToArray();
    }

    /// <summary>The CPU's model name from /proc/cpuinfo ("unknown" elsewhere).</summary>
    internal static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
