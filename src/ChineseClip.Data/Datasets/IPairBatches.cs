// What training needs from its data: how many pairs, and per pair its image as the eval transform resizes it (R x R,
// 8-bit RGB) and its token ids. Decoded in memory (InMemoryPairDataset, from tsv/jsonl or the official LMDB) or read
// from preprocessed shards (ShardSet); PairBatches turns them into batch tensors, with or without the training
// augmentation.
using ChineseClip.Model.Imaging;
using static TorchSharp.torch;

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

public static class PairBatches
{
    /// <summary>Normalised pixels [N, 3, R, R] and token ids [N, L] of the given pairs; with
    /// <paramref name="augmentation"/>, each image goes through the training augmentation first.</summary>
    public static (Tensor Pixels, Tensor Ids) Batch(this IPairBatches data, IReadOnlyList<int> indices, BatchAugmentation? augmentation = null)
    {
        int n = indices.Count, r = data.Resolution, l = data.ContextLength, plane = 3 * r * r;
        if (augmentation is not null && (augmentation.SampleKeys.Count != n || augmentation.Augment.Resolution != r))
            throw new ArgumentException($"augmentation for {augmentation.SampleKeys.Count} samples at {augmentation.Augment.Resolution} px, batch of {n} at {r} px");
        var pixels = new float[n * plane];
        var ids = new long[n * l];
        for (int i = 0; i < n; i++) data.CopyTokens(indices[i], ids.AsSpan(i * l, l));
        if (augmentation is null)
            for (int i = 0; i < n; i++) ImageTransform.Normalize(data.Pixels(indices[i]), pixels.AsSpan(i * plane, plane));
        else
            Parallel.For(0, n, i =>
            {
                var augmented = new byte[plane];
                var (width, height) = data.SourceSize(indices[i]);
                augmentation.Augment.Apply(data.Pixels(indices[i]), width, height, augmentation.Epoch, augmentation.SampleKeys[i], augmented);
                ImageTransform.Normalize(augmented, pixels.AsSpan(i * plane, plane));
            });
        return (tensor(pixels, [n, 3, r, r]), tensor(ids, [n, l]));
    }
}
