// A split's shards read back for training: every {split}-NNNNN.shard of a folder, verified, in shard order, with the
// same pixels and tokens InMemoryPairDataset gives for the same pairs.

namespace ChineseClip.Data.Shards;

public sealed class ShardSet : ChineseClip.Data.Datasets.IPairBatches
{
    readonly List<PackedShard> _shards;
    readonly int[] _starts; // global sample index of each shard's first sample

    ShardSet(List<PackedShard> shards)
    {
        _shards = shards;
        _starts = new int[shards.Count];
        for (int i = 1; i < shards.Count; i++) _starts[i] = checked(_starts[i - 1] + shards[i - 1].Count);
        Count = shards.Count == 0 ? 0 : _starts[^1] + shards[^1].Count;
    }

    public IReadOnlyList<PackedShard> Shards => _shards;
    public int Count { get; }
    public int Resolution => _shards[0].Info.Resolution;
    public int ContextLength => _shards[0].Info.ContextLength;

    /// <summary>Opens DIR/{split}-*.shard. The set must be complete: shards 0..N-1 whose slices follow each other
    /// from pair 0, one resolution and context length; otherwise a one-line error names the folder or file.</summary>
    public static ShardSet Open(string dir, string split)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: shard folder not found");
        var paths = Directory.GetFiles(dir, $"{split}-*.shard").Order(StringComparer.Ordinal).ToList();
        if (paths.Count == 0) throw new InvalidDataException($"{dir}: no {split}-*.shard files");
        var shards = paths.Select(PackedShard.Open).ToList();
        long nextPair = 0;
        for (int i = 0; i < shards.Count; i++)
        {
            var info = shards[i].Info;
            string? problem =
                info.Split != split ? $"holds split '{info.Split}'" :
                info.Shard != i ? $"is shard {info.Shard} where shard {i} belongs (a shard is missing or repeated)" :
                info.FirstPair != nextPair ? $"starts at pair {info.FirstPair}, expected {nextPair}" :
                info.Resolution != shards[0].Info.Resolution || info.ContextLength != shards[0].Info.ContextLength
                    ? $"has resolution {info.Resolution} / context length {info.ContextLength}, the first shard {shards[0].Info.Resolution} / {shards[0].Info.ContextLength}" :
                null;
            if (problem != null) throw new InvalidDataException($"{shards[i].Path}: {problem}");
            nextPair += info.PairCount;
        }
        return new ShardSet(shards);
    }

    /// <summary>The shard and position of global sample <paramref name="index"/>.</summary>
    public (PackedShard Shard, int Index) Locate(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"sample {index} of {Count}");
        int s = Array.BinarySearch(_starts, index);
        if (s < 0) s = ~s - 1;
        while (_shards[s].Count == 0 || index - _starts[s] >= _shards[s].Count) s++; // empty shards share a start
        return (_shards[s], index - _starts[s]);
    }

    public ReadOnlySpan<byte> Pixels(int index)
    {
        var (shard, k) = Locate(index);
        return shard.Pixels(k);
    }

    /// <summary>Shards keep only the R x R pixels, not the original size.</summary>
    public (int Width, int Height) SourceSize(int index) => (Resolution, Resolution);

    public void CopyTokens(int index, Span<long> ids)
    {
        var (shard, k) = Locate(index);
        var tokens = shard.Tokens(k);
        for (int t = 0; t < tokens.Length; t++) ids[t] = tokens[t];
    }
}
