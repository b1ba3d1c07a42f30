// A split of an official dataset held in memory: every image decoded and resized once (8-bit RGB at the model
// resolution, with its original size kept for the training augmentation's crop), every (text, image) pair
// tokenized. Read from `{split}_imgs.tsv` + `{split}_texts.jsonl`, where pairs are ordered as the official LMDB
// builder orders them (texts in file order, then each text's image_ids), or from an official LMDB split, where pair i
// is the entry under key i, exactly the samples the official LMDBDataset iterates. Suitable for demo and small
// private datasets; large corpora go through packed shards (the data issue).
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;

namespace ChineseClip.Data.Datasets;

public sealed record TextImagePair(long ImageId, long TextId, string Text);

public sealed class InMemoryPairDataset : IPairBatches
{
    readonly Dictionary<long, int> _imageIndex = new();
    readonly List<byte[]> _pixels = new();   // HWC RGB, Resolution x Resolution
    readonly List<(int Width, int Height)> _sourceSizes = new();
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
        dataset.AddImages(ImageTsv.Read(imagesPath, e => onError(e.ToString())).ToList(), transform, r => $"{imagesPath}:{r.Line}", onError);
        foreach (var text in TextJsonl.Read(textsPath, e => onError(e.ToString())))
        {
            long[] ids = dataset.AddText(text, tokenizer);
            foreach (long imageId in text.ImageIds)
            {
                if (!dataset._imageIndex.ContainsKey(imageId))
                {
                    onError($"{textsPath}:{text.Line}: text {text.TextId}: image {imageId} is not in {imagesPath}");
                    continue;
                }
                dataset.AddPair(new TextImagePair(imageId, text.TextId, text.Text), ids);
            }
        }
        return dataset;
    }

    /// <summary>Loads an official LMDB split (<paramref name="splitDir"/> holds `pairs` and `imgs`): pair i is key i
    /// of `pairs`. The texts (for validation) are the distinct text ids in pair order, each with the images it is
    /// paired with. Undecodable images, unreadable pairs and pairs naming a missing image are reported and left out.</summary>
    public static InMemoryPairDataset LoadLmdb(string splitDir, ImageTransform transform, ClipTokenizer tokenizer, int contextLength,
        Action<string> onError)
    {
        var dataset = new InMemoryPairDataset(transform.Resolution, contextLength);
        dataset.AddImages(OfficialLmdb.ReadImages(splitDir, onError).ToList(), transform, _ => $"{splitDir}/imgs", onError);
        var pairs = OfficialLmdb.ReadPairs(splitDir, onError);
        var texts = new Dictionary<long, (TextRecord Text, long[] Ids)>();
        for (int i = 0; i < pairs.Count; i++)
        {
            var (imageId, textId, text) = pairs[i];
            if (!texts.TryGetValue(textId, out var entry))
            {
                var record = new TextRecord(textId, text, new List<long>());
                entry = texts[textId] = (record, dataset.AddText(record, tokenizer));
            }
            ((List<long>)entry.Text.ImageIds).Add(imageId);
            if (!dataset._imageIndex.ContainsKey(imageId))
            {
                onError($"{splitDir}/pairs: pair {i}: image {imageId} is not in {splitDir}/imgs");
                continue;
            }
            dataset.AddPair(new TextImagePair(imageId, textId, text), entry.Ids);
        }
        return dataset;
    }

    /// <summary>Where a split is read from the official LMDB: null when <paramref name="dir"/> holds the split's tsv or
    /// jsonl; else DIR/lmdb/{split}, or DIR itself (official configs point train_data at lmdb/train), whichever holds
    /// `pairs` and `imgs`; else null.</summary>
    public static string? LmdbSplitDirectory(string dir, string split)
    {
        if (File.Exists(Path.Combine(dir, $"{split}_imgs.tsv")) || File.Exists(Path.Combine(dir, $"{split}_texts.jsonl"))) return null;
        foreach (string candidate in new[] { Path.Combine(dir, "lmdb", split), dir })
            if (Directory.Exists(Path.Combine(candidate, "pairs")) && Directory.Exists(Path.Combine(candidate, "imgs"))) return candidate;
        return null;
    }

    void AddImages(List<ImageRecord> records, ImageTransform transform, Func<ImageRecord, string> where, Action<string> onError)
    {
        var decoded = new byte[]?[records.Count];
        var sizes = new (int, int)[records.Count];
        var problems = new string?[records.Count];
        Parallel.For(0, records.Count, i =>
        {
            try
            {
                decoded[i] = transform.ToRgbBytes(records[i].Bytes);
                sizes[i] = ImageTransform.SourceSize(records[i].Bytes);
            }
            catch (InvalidImageException e) { problems[i] = $"{where(records[i])}: image {records[i].ImageId}: {e.Message}"; }
        });
        for (int i = 0; i < records.Count; i++)
        {
            if (problems[i] is { } p) { onError(p); continue; }
            if (!_imageIndex.TryAdd(records[i].ImageId, _pixels.Count))
            {
                onError($"{where(records[i])}: image {records[i].ImageId}: duplicate image_id, first one kept");
                continue;
            }
            _pixels.Add(decoded[i]!);
            _sourceSizes.Add(sizes[i]);
        }
    }

    long[] AddText(TextRecord text, ClipTokenizer tokenizer)
    {
        Texts.Add(text);
        long[] ids = tokenizer.Tokenize(TextPreprocess.ForLoader(text.Text), ContextLength);
        _textTokens.Add(ids);
        return ids;
    }

    void AddPair(TextImagePair pair, long[] ids)
    {
        Pairs.Add(pair);
        _tokens.Add(ids);
    }

    public ReadOnlySpan<byte> Pixels(int pair) => _pixels[_imageIndex[Pairs[pair].ImageId]];

    public (int Width, int Height) SourceSize(int pair) => _sourceSizes[_imageIndex[Pairs[pair].ImageId]];

    public void CopyTokens(int pair, Span<long> ids) => _tokens[pair].CopyTo(ids);

    /// <summary>R x R x 3 bytes (HWC RGB) of the image at <paramref name="position"/> in <see cref="ImageIds"/>.</summary>
    public ReadOnlySpan<byte> ImagePixels(int position) => _pixels[position];

    /// <summary>The context_length token ids of text <paramref name="text"/> (its position in <see cref="Texts"/>).</summary>
    public ReadOnlySpan<long> TextIds(int text) => _textTokens[text];

    public int ImagePosition(long imageId) => _imageIndex.TryGetValue(imageId, out int p) ? p : -1;
}
