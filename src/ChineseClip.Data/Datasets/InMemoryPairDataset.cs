// A split of an official dataset folder held in memory: every image decoded and resized once (8-bit RGB at the model
// resolution), every (text, image) pair tokenized, pairs ordered as the official LMDB builder orders them (texts in
// file order, then each text's image_ids). Suitable for demo and small private datasets; large corpora go through
// packed shards (the data issue).
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using static TorchSharp.torch;

namespace ChineseClip.Data.Datasets;

public sealed record TextImagePair(long ImageId, long TextId, string Text);

public sealed class InMemoryPairDataset : IPairBatches
{
    readonly Dictionary<long, int> _imageIndex = new();
    readonly List<byte[]> _pixels = new();   // HWC RGB, Resolution x Resolution
    readonly List<long[]> _tokens = new();   // one per pair
    readonly List<long[]> _textTokens = new(); // one per text

    InMemoryPairDataset(int resolution, int contextLength)
    {
        Resolution = resolution;
        ContextLength = contextLength;
    }

    public int Resolution { get; }
    public int ContextLength { get; }
    public List<TextImagePair> Pairs { get; } = new();
    public List<TextRecord> Texts { get; } = new();
    public IReadOnlyList<long> ImageIds => _imageIndex.OrderBy(kv => kv.Value).Select(kv => kv.Key).ToList();
    public int Count => Pairs.Count;

    /// <summary>Loads `{split}_imgs.tsv` and `{split}_texts.jsonl`; bad records and pairs naming a missing image are
    /// reported through <paramref name="onError"/> and left out.</summary>
    public static InMemoryPairDataset Load(string dataDir, string split, ImageTransform transform, ClipTokenizer tokenizer,
        int contextLength, Action<string> onError)
    {
        var dataset = new InMemoryPairDataset(transform.Resolution, contextLength);
        string imagesPath = Path.Combine(dataDir, $"{split}_imgs.tsv");
        string textsPath = Path.Combine(dataDir, $"{split}_texts.jsonl");
        var records = ImageTsv.Read(imagesPath, e => onError(e.ToString())).ToList();
        var decoded = new byte[]?[records.Count];
        var problems = new string?[records.Count];
        Parallel.For(0, records.Count, i =>
        {
            try { decoded[i] = transform.ToRgbBytes(records[i].Bytes); }
            catch (InvalidImageException e) { problems[i] = $"{imagesPath}:{records[i].Line}: image {records[i].ImageId}: {e.Message}"; }
        });
        for (int i = 0; i < records.Count; i++)
        {
            if (problems[i] is { } p) { onError(p); continue; }
            if (!dataset._imageIndex.TryAdd(records[i].ImageId, dataset._pixels.Count))
            {
                onError($"{imagesPath}:{records[i].Line}: image {records[i].ImageId}: duplicate image_id, first one kept");
                continue;
            }
            dataset._pixels.Add(decoded[i]!);
        }
        foreach (var text in TextJsonl.Read(textsPath, e => onError(e.ToString())))
        {
            dataset.Texts.Add(text);
            long[] ids = tokenizer.Tokenize(TextPreprocess.ForLoader(text.Text), contextLength);
            dataset._textTokens.Add(ids);
            foreach (long imageId in text.ImageIds)
            {
                if (!dataset._imageIndex.ContainsKey(imageId))
                {
                    onError($"{textsPath}:{text.Line}: text {text.TextId}: image {imageId} is not in {imagesPath}");
                    continue;
                }
                dataset.Pairs.Add(new TextImagePair(imageId, text.TextId, text.Text));
                dataset._tokens.Add(ids);
            }
        }
        return dataset;
    }

    /// <summary>Normalised pixels [N, 3, R, R] and token ids [N, L] of the given pairs.</summary>
    public (Tensor Pixels, Tensor Ids) Batch(IReadOnlyList<int> pairIndices)
    {
        int n = pairIndices.Count, plane = 3 * Resolution * Resolution;
        var pixels = new float[n * plane];
        var ids = new long[n * ContextLength];
        for (int i = 0; i < n; i++)
        {
            int pair = pairIndices[i];
            ImageTransform.Normalize(_pixels[_imageIndex[Pairs[pair].ImageId]], pixels.AsSpan(i * plane, plane));
            _tokens[pair].CopyTo(ids, i * ContextLength);
        }
        return (tensor(pixels, [n, 3, Resolution, Resolution]), tensor(ids, [n, ContextLength]));
    }

    /// <summary>Normalised pixels of images by their position in <see cref="ImageIds"/>.</summary>
    public Tensor Images(int start, int count)
    {
        int plane = 3 * Resolution * Resolution;
        var pixels = new float[count * plane];
        for (int i = 0; i < count; i++) ImageTransform.Normalize(_pixels[start + i], pixels.AsSpan(i * plane, plane));
        return tensor(pixels, [count, 3, Resolution, Resolution]);
    }

    /// <summary>Token ids [texts, L] of every text in file order (for evaluation).</summary>
    public Tensor TextTokens()
    {
        var ids = new long[_textTokens.Count * ContextLength];
        for (int i = 0; i < _textTokens.Count; i++) _textTokens[i].CopyTo(ids, i * ContextLength);
        return tensor(ids, [_textTokens.Count, ContextLength]);
    }

    public int ImagePosition(long imageId) => _imageIndex.TryGetValue(imageId, out int p) ? p : -1;
}
