// What training needs from its data: how many pairs, and per pair its image as the eval transform resizes it (R x R,
// 8-bit RGB) and its token ids. Decoded in memory (InMemoryPairDataset, from tsv/jsonl or the official LMDB) or read
// from preprocessed shards (ShardSet); PairBatches (ChineseClip.Training) turns them into batch tensors, with or without
// the training augmentation.
using ChineseClip.Model.Imaging;

namespace ChineseClip.Data.Datasets;

public interface IPairBatches
{
    int Count { get; }
    int Resolution { get; }
    int ContextLength { get; }

    /// <summary>R x R x 3 bytes, HWC RGB, as <see cref="ImageTransform.ToRgbBytes"/> returns them.</summary>
    ReadOnlySpan<byte> Pixels(int index);

    /// <summary>The image's size before it was resized to R x R, or (R, R) where that is not known.</summary>
    (int Width, int Height) SourceSize(int index);

    void CopyTokens(int index, Span<long> ids);
}

/// <summary>The augmentation of one training batch: the epoch, and per sample the key its randomness is drawn from.</summary>
public sealed record BatchAugmentation(TrainAugment Augment, int Epoch, IReadOnlyList<long> SampleKeys);
