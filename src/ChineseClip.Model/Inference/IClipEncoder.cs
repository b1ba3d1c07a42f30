// The seam between what needs embeddings (feature extraction, the search index and service) and what computes them
// (TorchSharp over ClipModel, or ONNX Runtime over exported graphs). Plain arrays, so that neither side needs the other's
// tensor type.
namespace ChineseClip.Model.Inference;

/// <summary>Turns batches of preprocessed images and tokenized texts into L2-normalised embeddings.</summary>
public interface IClipEncoder : IDisposable
{
    /// <summary>The embedding width (embed_dim of the architecture).</summary>
    int Dimension { get; }

    /// <summary>The side R of the [3, R, R] images the image tower takes.</summary>
    int ImageResolution { get; }

    /// <summary>The longest token sequence the text tower takes ([CLS] and [SEP] included).</summary>
    int ContextLength { get; }

    /// <summary>Embeds <paramref name="count"/> images given as normalised pixels, [count, 3, R, R] row-major (what
    /// ImageTransform.ToPixels writes). Returns [count, Dimension] row-major, each row L2-normalised.</summary>
    float[] EncodeImages(ReadOnlySpan<float> pixels, int count);

    /// <summary>Embeds texts given as token ids ([CLS] ... [SEP], without padding; at most ContextLength each), as
    /// ClipTokenizer produces them. Returns [count, Dimension] row-major, each row L2-normalised. An implementation may
    /// pad a batch only to its longest text: [PAD] is masked, so features do not depend on the padded length.</summary>
    float[] EncodeTexts(IReadOnlyList<int[]> ids);
}
