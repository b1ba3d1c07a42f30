// What training needs from its data: how many pairs, and a batch of them by index (pixels N x 3 x R x R, normalised;
// token ids N x L). Decoded in memory (InMemoryPairDataset) or read from preprocessed shards (ShardSet).
using static TorchSharp.torch;

namespace ChineseClip.Data.Datasets;

public interface IPairBatches
{
    int Count { get; }
    (Tensor Pixels, Tensor Ids) Batch(IReadOnlyList<int> indices);
}
