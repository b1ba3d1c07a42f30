namespace ChineseClip.Training.Tests;

public class EpochSamplerTests
{
    [Fact]
    public void One_rank_follows_torch_randperm_seeded_with_seed_plus_epoch()
    {
        // Orders printed by Python torch 1.13: torch.randperm(n, generator=torch.Generator().manual_seed(s)).
        var sampler = new EpochSampler(datasetSize: 10, localBatchSize: 5, worldSize: 1, rank: 0, seed: 123);
        Assert.Equal([2, 0, 8, 1, 3, 7, 4, 9, 5, 6], sampler.Indices(epoch: 0));
        Assert.Equal([4, 3, 1, 9, 6, 0, 5, 7, 8, 2], sampler.Indices(epoch: 1));
        var large = new EpochSampler(1000, 10, 1, 0, seed: 0);
        Assert.Equal([44, 37, 675, 775, 947, 209, 719, 500, 561, 264, 261, 825], large.Indices(0)[..12]);
    }

    [Fact]
    public void The_dataset_is_padded_to_the_global_batch_by_wrapping_to_its_first_samples()
    {
        var sampler = new EpochSampler(datasetSize: 10, localBatchSize: 4, worldSize: 1, rank: 0, seed: 123);
        Assert.Equal(12, sampler.PaddedSize);
        Assert.Equal(3, sampler.BatchesPerEpoch);
        var counts = sampler.Indices(0).GroupBy(i => i).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(10, counts.Count);
        Assert.Equal(12, counts.Values.Sum());
    }

    [Fact]
    public void Ranks_take_interleaved_slices_of_one_global_order()
    {
        var single = new EpochSampler(datasetSize: 37, localBatchSize: 6, worldSize: 1, rank: 0, seed: 5);
        var ranks = Enumerable.Range(0, 3).Select(r => new EpochSampler(37, 2, 3, r, 5)).ToArray();
        Assert.Equal(single.PaddedSize, ranks[0].PaddedSize);
        int[] global = single.Indices(2);
        for (int r = 0; r < 3; r++)
            Assert.Equal(global.Where((_, i) => i % 3 == r), ranks[r].Indices(2));
        // A global batch of the 1-rank run is the union of the ranks' local batches at the same step.
        var step = single.Batches(2).Skip(1).First();
        Assert.Equal(step.Order(), ranks.SelectMany(s => s.Batches(2).Skip(1).First()).Order());
    }

    [Fact]
    public void Skipping_batches_resumes_exactly_where_an_epoch_stopped()
    {
        var sampler = new EpochSampler(50, 4, 1, 0, seed: 9);
        var all = sampler.Batches(3).ToList();
        Assert.Equal(all.Skip(5).SelectMany(b => b), sampler.Batches(3, skipBatches: 5).SelectMany(b => b));
    }
}
