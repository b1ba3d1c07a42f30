// IClipEncoder over TorchSharp's ClipModel (the reference implementation). Text batches are padded only to the longest
// text in the batch, not to the context length: [PAD] is masked in attention, so the features are the same, and a short
// query costs a fraction of a 52-token forward on a CPU.
using ChineseClip.Model;
using ChineseClip.Model.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Search;

public sealed class TorchClipEncoder : IClipEncoder
{
    readonly ClipModel _model;
    readonly bool _ownsModel;

    /// <summary>Wraps a loaded model (put into eval mode); disposes it with the encoder when <paramref name="ownsModel"/>.</summary>
    public TorchClipEncoder(ClipModel model, int contextLength, bool ownsModel = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 3);
        if (contextLength > model.Config.TextMaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(contextLength), $"context length {contextLength} is more than {model.Config.Name}'s {model.Config.TextMaxPositionEmbeddings} positions");
        _model = model;
        _ownsModel = ownsModel;
        _model.eval();
        ContextLength = contextLength;
    }

    /// <summary>Builds the architecture and loads the checkpoint (any format ClipModel.Load reads).</summary>
    public static TorchClipEncoder Load(ClipConfig config, string checkpoint, int contextLength) =>
        new(ClipModel.Load(config, checkpoint), contextLength);

    public int Dimension => _model.Config.EmbedDim;
    public int ImageResolution => _model.Config.ImageResolution;
    public int ContextLength { get; }

    public float[] EncodeImages(ReadOnlySpan<float> pixels, int count)
    {
        int r = ImageResolution, size = 3 * r * r;
        if (pixels.Length != count * size) throw new ArgumentException($"expected {count} x 3 x {r} x {r} pixels, got {pixels.Length} floats", nameof(pixels));
        if (count == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor input = tensor(pixels.ToArray(), [count, 3, r, r]);
        return ToArray(ClipModel.Normalize(_model.EncodeImage(input)));
    }

    public float[] EncodeTexts(IReadOnlyList<int[]> ids)
    {
        if (ids.Count == 0) return [];
        int longest = 0;
        foreach (int[] row in ids)
        {
            if (row.Length == 0 || row.Length > ContextLength)
                throw new ArgumentException($"a text of {row.Length} tokens: expected 1..{ContextLength} ([CLS] and [SEP] included)", nameof(ids));
            longest = Math.Max(longest, row.Length);
        }
        var padded = new long[ids.Count * longest]; // [PAD] is id 0
        for (int i = 0; i < ids.Count; i++)
            for (int j = 0; j < ids[i].Length; j++) padded[i * longest + j] = ids[i][j];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return ToArray(ClipModel.Normalize(_model.EncodeText(tensor(padded, [ids.Count, longest]))));
    }

    static float[] ToArray(Tensor t) => t.contiguous().data<float>().ToArray();

    public void Dispose()
    {
        if (_ownsModel) _model.Dispose();
    }
}
