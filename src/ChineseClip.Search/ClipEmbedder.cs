// Texts and encoded images in, L2-normalised embeddings out: the official eval preprocessing (TextPreprocess.ForLoader
// and the tokenizer; ImageTransform with its pixel limit) in front of any IClipEncoder.
using ChineseClip.Model;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Inference;
using ChineseClip.Model.Text;

namespace ChineseClip.Search;

public sealed class ClipEmbedder : IDisposable
{
    readonly ClipTokenizer _tokenizer;

    public ClipEmbedder(IClipEncoder encoder, ClipTokenizer tokenizer, ModelInfo model, long maxPixels = ImageTransform.DefaultMaxPixels)
    {
        Encoder = encoder;
        _tokenizer = tokenizer;
        Model = model;
        Transform = new ImageTransform(encoder.ImageResolution, maxPixels);
    }

    /// <summary>Loads the model <paramref name="model"/> describes with <paramref name="backend"/>; the checkpoint must still
    /// have the SHA-256 it was recorded with, and the vocab must fit the architecture.</summary>
    public static ClipEmbedder Load(ModelInfo model, string backend = ClipEncoders.Torch, long maxPixels = ImageTransform.DefaultMaxPixels, bool checkSha256 = true,
        EncoderSettings? settings = null)
    {
        if (!File.Exists(model.Checkpoint)) throw new FileNotFoundException($"{model.Checkpoint}: checkpoint not found", model.Checkpoint);
        if (checkSha256 && ModelInfo.Sha256Of(model.Checkpoint) is var sha && sha != model.Sha256)
            throw new InvalidDataException($"{model.Checkpoint}: SHA-256 {sha} differs from the {model.Sha256} the collection was embedded with");
        ClipConfig config = Architectures.Resolve(model.Arch);
        var tokenizer = ClipTokenizer.FromVocabFile(model.Vocab);
        if (tokenizer.VocabSize != config.VocabSize)
            throw new InvalidDataException($"{model.Vocab}: {tokenizer.VocabSize} tokens, but {config.Name} has vocab_size {config.VocabSize}");
        return new ClipEmbedder(ClipEncoders.Create(backend, model, config, settings), tokenizer, model, maxPixels);
    }

    public IClipEncoder Encoder { get; }
    public ModelInfo Model { get; }
    public ImageTransform Transform { get; }
    public int Dimension => Encoder.Dimension;
    int PixelCount => 3 * Transform.Resolution * Transform.Resolution;

    /// <summary>Token ids of a text as the official eval loader makes them ([CLS] ... [SEP], no padding).</summary>
    public int[] TokenIds(string text)
    {
        long[] row = _tokenizer.Tokenize(TextPreprocess.ForLoader(text), Encoder.ContextLength);
        int end = Array.IndexOf(row, (long)_tokenizer.SepId);
        return row.AsSpan(0, end + 1).ToArray().Select(v => (int)v).ToArray();
    }

    /// <summary>[texts, Dimension] row-major.</summary>
    public float[] EmbedTexts(IReadOnlyList<string> texts) => Encoder.EncodeTexts(texts.Select(TokenIds).ToList());

    /// <summary>The normalised pixels of one encoded image; InvalidImageException when it cannot be used.</summary>
    public float[] Pixels(ReadOnlySpan<byte> encoded) => Transform.ToPixels(encoded);

    /// <summary>[images, Dimension] row-major, from pixels of <see cref="Pixels"/>.</summary>
    public float[] EmbedPixels(IReadOnlyList<float[]> pixels)
    {
        var batch = new float[pixels.Count * PixelCount];
        for (int i = 0; i < pixels.Count; i++) pixels[i].CopyTo(batch, i * PixelCount);
        return Encoder.EncodeImages(batch, pixels.Count);
    }

    /// <summary>[images, Dimension] row-major from encoded images (decoded in parallel).</summary>
    public float[] EmbedImages(IReadOnlyList<byte[]> encoded)
    {
        var pixels = new float[encoded.Count][];
        Parallel.For(0, encoded.Count, i => pixels[i] = Pixels(encoded[i]));
        return EmbedPixels(pixels);
    }

    public void Dispose() => Encoder.Dispose();
}
