// The data's pixels and token ids as the tensors a step takes: batches of pairs (with or without the training
// augmentation) and, for validation, all images or all texts of an in-memory split. The datasets themselves
// (ChineseClip.Data) hold bytes and ids only.
using ChineseClip.Data.Datasets;
using ChineseClip.Model.Imaging;
using static TorchSharp.torch;

namespace ChineseClip.Training;

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

    /// <summary>Normalised pixels [count, 3, R, R] of images by their position in <see cref="InMemoryPairDataset.ImageIds"/>.</summary>
    public static Tensor Images(this InMemoryPairDataset data, int start, int count)
    {
        int plane = 3 * data.Resolution * data.Resolution;
        var pixels = new float[count * plane];
        for (int i = 0; i < count; i++) ImageTransform.Normalize(data.ImagePixels(start + i), pixels.AsSpan(i * plane, plane));
        return tensor(pixels, [count, 3, data.Resolution, data.Resolution]);
    }

    /// <summary>Token ids [texts, L] of every text in order (for evaluation).</summary>
    public static Tensor TextTokens(this InMemoryPairDataset data)
    {
        int texts = data.Texts.Count, l = data.ContextLength;
        var ids = new long[texts * l];
        for (int i = 0; i < texts; i++) data.TextIds(i).CopyTo(ids.AsSpan(i * l, l));
        return tensor(ids, [texts, l]);
    }
}
