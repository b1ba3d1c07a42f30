// A minimal IClipEncoder over a TorchSharp ClipModel, so that extract-features and bench encode treat both backends
// alike. The search library's TorchClipEncoder, written in parallel, is meant to replace it when the two are merged.
using ChineseClip.Model;
using ChineseClip.Model.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Inference;

internal sealed class TorchModelEncoder : IClipEncoder
{
    readonly ClipModel _model;

    /// <summary>Takes ownership of <paramref name="model"/> (set to eval mode).</summary>
    public TorchModelEncoder(ClipModel model, int contextLength)
    {
        _model = model;
        _model.eval();
        ContextLength = contextLength;
    }

    public ClipConfig Config => _model.Config;
    public int Dimension => _model.Config.EmbedDim;
    public int ImageResolution => _model.Config.ImageResolution;
    public int ContextLength { get; }

    public float[] EncodeImages(ReadOnlySpan<float> pixels, int count)
    {
        int r = ImageResolution;
        if (pixels.Length != (long)count * 3 * r * r) throw new ArgumentException($"{pixels.Length} pixel values for {count} images of 3 x {r} x {r}", nameof(pixels));
        if (count == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return ClipModel.Normalize(_model.EncodeImage(tensor(pixels.ToArray(), [count, 3, r, r]))).contiguous().data<float>().ToArray();
    }

    /// <summary>Pads every text to ContextLength, as the official loader does.</summary>
    public float[] EncodeTexts(IReadOnlyList<int[]> ids)
    {
        if (ids.Count == 0) return [];
        var padded = new long[ids.Count, ContextLength];
        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i].Length > ContextLength) throw new ArgumentException($"text {i}: {ids[i].Length} tokens, more than {ContextLength}", nameof(ids));
            for (int j = 0; j < ids[i].Length; j++) padded[i, j] = ids[i][j];
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return ClipModel.Normalize(_model.EncodeText(tensor(padded))).contiguous().data<float>().ToArray();
    }

    public void Dispose() => _model.Dispose();
}
