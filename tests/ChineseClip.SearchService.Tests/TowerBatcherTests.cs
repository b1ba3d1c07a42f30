using ChineseClip.SearchService.Serving;

namespace ChineseClip.SearchService.Tests;

public class TowerBatcherTests
{
    [Fact]
    public async Task Concurrent_requests_share_forward_passes_and_each_gets_its_own_row()
    {
        var sizes = new List<int>();
        using var batcher = new TowerBatcher<int>(inputs =>
        {
            lock (sizes) sizes.Add(inputs.Count);
            Thread.Sleep(20); // a forward pass takes time; requests arriving meanwhile wait for the next batch
            return inputs.SelectMany(i => new float[] { i, -i }).ToArray();
        }, dimension: 2, maxBatch: 8, window: TimeSpan.FromMilliseconds(5));

        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(() => batcher.EmbedAsync(i))));
        for (int i = 0; i < 40; i++) Assert.Equal(new float[] { i, -i }, results[i]);
        Assert.Equal(40, sizes.Sum());
        Assert.True(sizes.Count < 40, $"{sizes.Count} forward passes for 40 requests");
        Assert.All(sizes, s => Assert.InRange(s, 1, 8));
        Assert.Equal(40, batcher.Inputs);
    }

    [Fact]
    public async Task A_failing_batch_fails_its_requests_and_the_next_ones_are_served()
    {
        bool fail = true;
        using var batcher = new TowerBatcher<int>(inputs => fail ? throw new InvalidOperationException("boom") : new float[inputs.Count],
            dimension: 1, maxBatch: 4, window: TimeSpan.Zero);
        await Assert.ThrowsAsync<InvalidOperationException>(() => batcher.EmbedAsync(1));
        fail = false;
        float[] served = await batcher.EmbedAsync(2);
        Assert.Equal(new float[] { 0 }, served);
    }
}
