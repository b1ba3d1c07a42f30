using System.Text.Json;
using ChineseClip.Distributed;
using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

public class DataParallelTests
{
    // The fixture's tiny architecture without dropout, so every rank's forward is deterministic.
    static ClipConfig TinyWithoutDropout()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(SharedFiles.Path("fixtures", "official-tiny", "arch.json")))!.AsObject();
        json["text_hidden_dropout_prob"] = 0.0;
        json["text_attention_probs_dropout_prob"] = 0.0;
        return ClipConfig.FromJson("tiny-no-dropout", json.ToJsonString());
    }

    static (Tensor Pixels, Tensor Ids)[] Batches(int steps, int globalBatch)
    {
        torch.manual_seed(42);
        var random = new Random(42);
        return Enumerable.Range(0, steps).Select(_ =>
        {
            var ids = new long[globalBatch * 12];
            for (int b = 0; b < globalBatch; b++)
            {
                ids[b * 12] = 101;
                for (int t = 1; t < 10; t++) ids[b * 12 + t] = random.Next(672, 21128);
                ids[b * 12 + 10] = 102;
            }
            return (randn(globalBatch, 3, 64, 64), tensor(ids, [globalBatch, 12]));
        }).ToArray();
    }

    static Dictionary<string, float[]> Train(int worldSize, int accumulateRank, (Tensor Pixels, Tensor Ids)[] batches, int accumFreq = 1,
        bool ring = false, bool bf16 = false) => TrainAll(worldSize, batches, accumFreq, ring, bf16)[accumulateRank];

    static Dictionary<string, float[]>[] TrainAll(int worldSize, (Tensor Pixels, Tensor Ids)[] batches, int accumFreq = 1,
        bool ring = false, bool bf16 = false, bool aggregate = true, int ranksPerWorker = 1, List<float>? losses = null)
    {
        var config = TinyWithoutDropout();
        var group = new ThreadGroup(worldSize);
        string rendezvous = Path.Combine(Path.GetTempPath(), "cnclip-ring-" + Guid.NewGuid().ToString("N"));
        var models = new ClipModel[worldSize];
        for (int r = 0; r < worldSize; r++)
        {
            torch.manual_seed(7 + r); // different local inits: the broadcast must make them equal
            models[r] = new ClipModel(config);
        }
        var results = new Dictionary<string, float[]>[worldSize];
        var threads = Enumerable.Range(0, worldSize).Select(r => new Thread(() =>
        {
            // On this thread too: OpenMP's thread count is a per-thread setting, and a matrix product split over
            // another number of threads can round differently.
            torch.set_num_threads(1);
            using ICollectives collectives = ring
                ? RingCollectives.Connect(r, worldSize, new FileRendezvous(rendezvous), new RingOptions { ChunkBytes = 4096, Timeout = TimeSpan.FromSeconds(60) })
                : group.Member(r);
            GradientSync.BroadcastWeights(models[r], collectives);
            models[r].train();
            using var optimizer = OptimizerFactory.CreateAdamW(models[r], AdamWSettings.OfficialFor(config, lr: 1e-3));
            using var compute = bf16 ? new Bf16Compute(models[r]) : null;
            foreach (var (pixels, ids) in batches)
            {
                // Rank r takes rows r, r + W, r + 2W, ... of the global batch, as the sampler slices it.
                using Scalar first = r, end = pixels.shape[0], stride = worldSize;
                using var rows = arange(first, end, stride, dtype: ScalarType.Int64);
                Tensor localPixels = pixels.index_select(0, rows), localIds = ids.index_select(0, rows);
                var micro = Enumerable.Range(0, accumFreq).Select(j =>
                {
                    long size = localPixels.shape[0] / accumFreq;
                    return (localPixels.narrow(0, j * size, size), localIds.narrow(0, j * size, size));
                }).ToList();
                // ranks_per_worker k: part m is rows m, m + k, ... of this worker's share (the trainer splits so).
                var parts = Enumerable.Range(0, ranksPerWorker).Select(m =>
                {
                    using Scalar first = m, end = localPixels.shape[0], stride = ranksPerWorker;
                    using var own = arange(first, end, stride, dtype: ScalarType.Int64);
                    return (localPixels.index_select(0, own), localIds.index_select(0, own));
                }).ToList();
                var step = ranksPerWorker == 1
                    ? TrainStep.RunAccumulated(models[r], optimizer, micro, collectives, compute, aggregate)
                    : TrainStep.RunAsRanks(models[r], optimizer, parts, collectives, compute, aggregate);
                if (r == 0) losses?.Add(step.Loss);
            }
            results[r] = models[r].state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Float32).data<float>().ToArray());
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        foreach (var m in models) m.Dispose();
        if (Directory.Exists(rendezvous)) Directory.Delete(rendezvous, recursive: true);
        return results;
    }

    static double WorstDifference(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        double worst = 0;
        foreach (var (key, expected) in a)
            for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - b[key][i]));
        return worst;
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData(1, 3)]
    [InlineData(2, 2)]
    public void Accumulating_micro_batches_reaches_the_weights_of_the_large_batch(int worldSize, int accumFreq)
    {
        torch.set_num_threads(1);
        var batches = Batches(steps: 2, globalBatch: 12);
        double worst = WorstDifference(Train(1, 0, batches), Train(worldSize, 0, batches, accumFreq));
        Assert.True(worst < 2e-5, $"largest weight difference {worst}");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(2, true)]
    [InlineData(3, true)]
    public void N_ranks_reach_the_weights_of_one_rank_with_the_same_global_batch(int worldSize, bool ring = false)
    {
        torch.set_num_threads(1);
        var batches = Batches(steps: 3, globalBatch: 12);
        var single = Train(1, 0, batches);
        var last = Train(worldSize, worldSize - 1, batches, ring: ring);
        double worst = 0;
        foreach (var (key, expected) in single)
            for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - last[key][i]));
        Assert.True(worst < 2e-5, $"largest weight difference {worst}");
        // The steps did move the weights, so the comparison above could fail.
        var initial = Train(1, 0, []);
        Assert.Contains(single, kv => kv.Value.Zip(initial[kv.Key]).Any(p => Math.Abs(p.First - p.Second) > 1e-4));
    }

    [Fact]
    public void Bf16_ranks_over_the_ring_keep_identical_fp32_weights_that_follow_one_rank()
    {
        torch.set_num_threads(1);
        var batches = Batches(steps: 3, globalBatch: 12);
        var ranks = TrainAll(2, batches, ring: true, bf16: true);
        Assert.Equal(0, WorstDifference(ranks[0], ranks[1])); // one all-reduced fp32 gradient, one AdamW step everywhere
        var single = Train(1, 0, batches, bf16: true);
        var initial = Train(1, 0, []);
        double moved = 0, apart = 0;
        foreach (var (key, w) in single)
            for (int i = 0; i < w.Length; i++)
            {
                moved += Math.Pow(w[i] - initial[key][i], 2);
                apart += Math.Pow(w[i] - ranks[0][key][i], 2);
            }
        // bf16 rounds differently when a forward sees 6 rows instead of 12: the updates agree up to that noise.
        Assert.True(moved > 0 && Math.Sqrt(apart / moved) < 0.15, $"2 ranks vs 1 in bf16: {Math.Sqrt(apart / moved):P1} of the update");
    }

    [Fact]
    public void Skip_aggregate_takes_each_ranks_loss_over_its_own_batch_and_keeps_ranks_identical()
    {
        torch.set_num_threads(1);
        var batches = Batches(steps: 2, globalBatch: 12);
        var local = TrainAll(2, batches, aggregate: false);
        Assert.Equal(0, WorstDifference(local[0], local[1]));
        // Without the other rank's features the logits are 6 x 6 instead of 12 x 12: another loss, other weights.
        Assert.True(WorstDifference(local[0], Train(2, 0, batches)) > 1e-5, "skip_aggregate changed nothing");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void One_worker_computing_two_ranks_takes_exactly_the_steps_of_two_ranks(bool aggregate)
    {
        torch.set_num_threads(1);
        var batches = Batches(steps: 3, globalBatch: 12);
        List<float> twoLosses = [], oneLosses = [], plainLosses = [];
        var two = TrainAll(2, batches, aggregate: aggregate, losses: twoLosses)[0];
        var one = TrainAll(1, batches, aggregate: aggregate, ranksPerWorker: 2, losses: oneLosses)[0];
        Assert.Equal(3, oneLosses.Count);
        Assert.Equal(twoLosses, oneLosses); // bit for bit: the same forwards, and g0 + g1 summed in either order
        Assert.Equal(0, WorstDifference(two, one));
        // The weights moved, so the equality above could fail.
        var initial = Train(1, 0, []);
        Assert.True(WorstDifference(initial, one) > 1e-4);
    }

    [Fact]
    public void Two_workers_computing_two_ranks_each_follow_four_ranks()
    {
        torch.set_num_threads(1);
        var batches = Batches(steps: 3, globalBatch: 12);
        List<float> fourLosses = [], twoLosses = [];
        var four = TrainAll(4, batches, losses: fourLosses);
        var two = TrainAll(2, batches, ranksPerWorker: 2, losses: twoLosses);
        Assert.Equal(0, WorstDifference(two[0], two[1]));
        // Four gradients are summed in another order than four ranks sum them: equal up to float rounding (the
        // tolerance of the tests above).
        Assert.True(WorstDifference(four[0], two[0]) < 2e-5, $"largest weight difference {WorstDifference(four[0], two[0])}");
        Assert.Equal(fourLosses[0], twoLosses[0]); // the first step's forwards are the same
        Assert.All(fourLosses.Zip(twoLosses), p => Assert.True(Math.Abs(p.First - p.Second) < 1e-5, $"{p.First} vs {p.Second}"));
    }
}
