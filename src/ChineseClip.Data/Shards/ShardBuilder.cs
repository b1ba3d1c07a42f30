// Turns a slice of a split's pairs into a shard. The split's candidate pairs are InMemoryPairDataset's order (texts in
// file order, then each text's image_ids) over the images the tsv names; a pair whose image fails to decode is left
// out of its shard, so the shards of a split, in order, hold exactly the pairs InMemoryPairDataset loads.
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;

namespace ChineseClip.Data.Shards;

/// <summary>One shard's worth of work: pairs [FirstPair, FirstPair + PairCount) of a split.</summary>
public sealed record ShardSpec(string DataDir, string Split, int Shard, long FirstPair, int PairCount, int Resolution, int ContextLength)
{
    public ShardInfo Info => new(Split, Shard, FirstPair, PairCount, Resolution, ContextLength);
}

public readonly record struct CandidatePair(long TextId, long ImageId, TextRecord Text);

public static class ShardBuilder
{
    public static string ImagesPath(string dataDir, string split) => Path.Combine(dataDir, $"{split}_imgs.tsv");
    public static string TextsPath(string dataDir, string split) => Path.Combine(dataDir, $"{split}_texts.jsonl");

    /// <summary>The split's candidate pairs in order (images are not decoded).</summary>
    public static List<CandidatePair> CandidatePairs(string dataDir, string split, Action<string> onError)
    {
        string imagesPath = ImagesPath(dataDir, split), textsPath = TextsPath(dataDir, split);
        if (!File.Exists(textsPath)) throw new FileNotFoundException($"{textsPath}: text file not found", textsPath);
        var imageIds = ImageTsv.ReadIds(imagesPath, e => onError(e.ToString())).ToHashSet();
        var pairs = new List<CandidatePair>();
        foreach (var text in TextJsonl.Read(textsPath, e => onError(e.ToString())))
            foreach (long imageId in text.ImageIds)
            {
                if (imageIds.Contains(imageId)) pairs.Add(new CandidatePair(text.TextId, imageId, text));
                else onError($"{textsPath}:{text.Line}: text {text.TextId}: image {imageId} is not in {imagesPath}");
            }
        return pairs;
    }

    /// <summary>Slices of at most <paramref name="pairsPerShard"/> pairs covering the split, shard numbers from 0.</summary>
    public static List<ShardSpec> Plan(string dataDir, string split, int pairsPerShard, int resolution, int contextLength, Action<string> onError)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pairsPerShard, 1);
        int total = CandidatePairs(dataDir, split, onError).Count;
        var specs = new List<ShardSpec>();
        for (int first = 0, shard = 0; first < total; first += pairsPerShard, shard++)
            specs.Add(new ShardSpec(dataDir, split, shard, first, Math.Min(pairsPerShard, total - first), resolution, contextLength));
        return specs;
    }

    /// <summary>Decodes and tokenizes the slice's pairs. Problems (a missing image, one that does not decode) are
    /// reported through <paramref name="onError"/> and leave the pair out.</summary>
    public static List<ShardSample> Build(ShardSpec spec, ClipTokenizer tokenizer, Action<string> onError)
    {
        if (spec.Resolution is < 1 or > 4096 || spec.ContextLength < 3)
            throw new ArgumentException($"shard {spec.Shard}: resolution {spec.Resolution} / context length {spec.ContextLength} out of range");
        var all = CandidatePairs(spec.DataDir, spec.Split, onError);
        if (spec.FirstPair < 0 || spec.PairCount < 0 || spec.FirstPair + spec.PairCount > all.Count)
            throw new ArgumentException(
                $"{TextsPath(spec.DataDir, spec.Split)}: pairs [{spec.FirstPair}, {spec.FirstPair + spec.PairCount}) lie outside the split's {all.Count} pairs");
        var slice = all.GetRange((int)spec.FirstPair, spec.PairCount);

        // Every record of the images the slice needs, in file order: InMemoryPairDataset keeps the first that decodes.
        string imagesPath = ImagesPath(spec.DataDir, spec.Split);
        var wanted = slice.Select(p => p.ImageId).ToHashSet();
        var records = ImageTsv.ReadWhere(imagesPath, wanted.Contains, e => onError(e.ToString()))
            .GroupBy(r => r.ImageId).ToDictionary(g => g.Key, g => g.ToList());
        var transform = new ImageTransform(spec.Resolution);
        var groups = records.Values.ToArray();
        var decoded = new byte[]?[groups.Length];
        var errorLock = new Lock();
        void Report(string e) { lock (errorLock) onError(e); }
        Parallel.For(0, groups.Length, g => decoded[g] = FirstDecodable(groups[g], transform, imagesPath, Report));
        var images = new Dictionary<long, byte[]?>();
        for (int g = 0; g < groups.Length; g++) images[groups[g][0].ImageId] = decoded[g];

        var samples = new List<ShardSample>(slice.Count);
        var tokens = new Dictionary<long, long[]>();
        for (int i = 0; i < slice.Count; i++)
        {
            var pair = slice[i];
            if (images.GetValueOrDefault(pair.ImageId) is not { } pixels) continue;
            if (!tokens.TryGetValue(pair.TextId, out long[]? ids))
                tokens[pair.TextId] = ids = tokenizer.Tokenize(TextPreprocess.ForLoader(pair.Text.Text), spec.ContextLength);
            samples.Add(new ShardSample(spec.FirstPair + i, pair.ImageId, pair.TextId, pixels, ids));
        }
        return samples;
    }

    /// <summary>Builds the shard and writes it to DIR/{split}-{shard:D5}.shard (atomically); returns its path and
    /// how many samples it holds.</summary>
    public static (string Path, int Samples) BuildAndWrite(ShardSpec spec, ClipTokenizer tokenizer, string outputDir, Action<string> onError)
    {
        var samples = Build(spec, tokenizer, onError);
        string path = Path.Combine(outputDir, spec.Info.FileName());
        PackedShard.Write(path, spec.Info, samples);
        return (path, samples.Count);
    }

    static byte[]? FirstDecodable(List<ImageRecord> records, ImageTransform transform, string imagesPath, Action<string> onError)
    {
        foreach (var record in records)
        {
            try { return transform.ToRgbBytes(record.Bytes); }
            catch (InvalidImageException e)
            {
                onError($"{imagesPath}:{record.Line}: image {record.ImageId}: {e.Message}");
            }
        }
        return null;
    }
}
