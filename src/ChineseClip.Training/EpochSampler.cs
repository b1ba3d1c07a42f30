// The official sampling order: the dataset is padded to a multiple of the global batch by wrapping around to its
// first samples (pad_dataset), shuffled by torch.randperm with a generator seeded seed + epoch (DistributedSampler,
// shuffle=True, also for validation with epoch 0), and rank r takes indices r, r + W, r + 2W, ... TorchSharp runs the
// same libtorch generator, so the order is the one the official code uses.
using TorchSharp;

namespace ChineseClip.Training;

public sealed class EpochSampler
{
    public EpochSampler(int datasetSize, int localBatchSize, int worldSize, int rank, long seed)
    {
        if (datasetSize < 1) throw new ArgumentOutOfRangeException(nameof(datasetSize), "the dataset is empty");
        ArgumentOutOfRangeException.ThrowIfLessThan(localBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank));
        DatasetSize = datasetSize;
        LocalBatchSize = localBatchSize;
        WorldSize = worldSize;
        Rank = rank;
        Seed = seed;
        int global = localBatchSize * worldSize;
        PaddedSize = (datasetSize + global - 1) / global * global;
    }

    public int DatasetSize { get; }
    public int LocalBatchSize { get; }
    public int WorldSize { get; }
    public int Rank { get; }
    public long Seed { get; }
    public int PaddedSize { get; }
    public int BatchesPerEpoch => PaddedSize / (LocalBatchSize * WorldSize);

    /// <summary>This rank's positions in the padded epoch (0 .. PaddedSize-1), in batch order; position p is
    /// dataset sample p % DatasetSize. The position identifies a sample of the epoch whatever the world size.</summary>
    public int[] Positions(int epoch)
    {
        using var generator = new torch.Generator((ulong)(Seed + epoch));
        using var permutation = torch.randperm(PaddedSize, generator: generator);
        long[] order = permutation.data<long>().ToArray();
        var mine = new int[PaddedSize / WorldSize];
        for (int i = 0; i < mine.Length; i++) mine[i] = (int)order[Rank + i * WorldSize];
        return mine;
    }

    /// <summary>This rank's sample indices for the epoch (into the dataset, already wrapped), in batch order.</summary>
    public int[] Indices(int epoch) => Positions(epoch).Select(p => p % DatasetSize).ToArray();

    /// <summary>This rank's batches for the epoch, skipping the first <paramref name="skipBatches"/> (mid-epoch
    /// resume): dataset indices, or with <paramref name="positions"/> the positions in the padded epoch.</summary>
    public IEnumerable<int[]> Batches(int epoch, int skipBatches = 0, bool positions = false)
    {
        int[] indices = positions ? Positions(epoch) : Indices(epoch);
        for (int b = skipBatches; b < BatchesPerEpoch; b++) yield return indices[(b * LocalBatchSize)..((b + 1) * LocalBatchSize)];
    }
}
