// Packed training shards: a slice of a split's pairs, preprocessed once (decoded, resized 8-bit RGB pixels and token
// ids) so training reads them without decoding images or tokenizing. One file per shard, little-endian:
//
//   "CNCLIPSH"  u32 version=1  u32 shard  i64 first_pair  i32 pair_count  i32 samples  i32 resolution
//   i32 context_length  u8 layout (0 = HWC)  u8 token_bytes (4)  u16 split name length  split name (UTF-8), zero pad
//   to 8 bytes  |  i64 pair_index[samples]  i64 image_id[samples]  i64 text_id[samples]
//   i32 tokens[samples * context_length]  u8 pixels[samples * resolution * resolution * 3]  |  u64 XxHash64 of all
//   bytes before it
//
// Records have fixed sizes, so sample i is found by arithmetic (the arrays are the index). pair_index is the pair's
// position in the split's candidate pairs (ShardBuilder): a pair whose image does not decode is left out, so
// `samples` may be below `pair_count`. Files are replaced atomically and their bytes depend only on the input, so
// writing the same shard twice gives the same file.
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Imaging;

namespace ChineseClip.Data.Shards;

/// <summary>What a shard holds: which slice of which split, at which resolution and context length.</summary>
/// <param name="FirstPair">Position of the slice's first pair among the split's candidate pairs.</param>
/// <param name="PairCount">Length of the slice (samples whose image failed to decode are not stored).</param>
public sealed record ShardInfo(string Split, int Shard, long FirstPair, int PairCount, int Resolution, int ContextLength)
{
    public static string FileName(string split, int shard) => $"{split}-{shard:D5}.shard";
    public string FileName() => FileName(Split, Shard);
}

/// <summary>One sample before it is packed: pixels are R x R x 3 bytes (HWC RGB), tokens context_length ids.</summary>
public sealed record ShardSample(long PairIndex, long ImageId, long TextId, byte[] Pixels, long[] Tokens);

/// <summary>A verified shard held in memory; <see cref="Pixels"/> and <see cref="Tokens"/> are views into the file.</summary>
public sealed class PackedShard
{
    static readonly byte[] Magic = "CNCLIPSH"u8.ToArray();
    const int Version = 1;
    const int FixedHeader = 48;
    const byte LayoutHwc = 0;
    const byte TokenBytes = 4;

    readonly byte[] _bytes;
    readonly int _pairsAt, _imagesAt, _textsAt, _tokensAt, _pixelsAt;

    PackedShard(string path, byte[] bytes, ShardInfo info, int count, int headerLength)
    {
        Path = path;
        _bytes = bytes;
        Info = info;
        Count = count;
        _pairsAt = headerLength;
        _imagesAt = _pairsAt + 8 * count;
        _textsAt = _imagesAt + 8 * count;
        _tokensAt = _textsAt + 8 * count;
        _pixelsAt = _tokensAt + 4 * count * info.ContextLength;
    }

    public string Path { get; }
    public ShardInfo Info { get; }
    public int Count { get; }
    int PixelLength => 3 * Info.Resolution * Info.Resolution;

    public long PairIndex(int i) => Int64At(_pairsAt, i);
    public long ImageId(int i) => Int64At(_imagesAt, i);
    public long TextId(int i) => Int64At(_textsAt, i);

    /// <summary>R x R x 3 bytes, HWC RGB, as <see cref="ImageTransform.ToRgbBytes"/> returns them.</summary>
    public ReadOnlySpan<byte> Pixels(int i) => _bytes.AsSpan(_pixelsAt + CheckIndex(i) * PixelLength, PixelLength);

    public ReadOnlySpan<int> Tokens(int i) =>
        MemoryMarshal.Cast<byte, int>(_bytes.AsSpan(_tokensAt + CheckIndex(i) * 4 * Info.ContextLength, 4 * Info.ContextLength));

    long Int64At(int start, int i) => BinaryPrimitives.ReadInt64LittleEndian(_bytes.AsSpan(start + 8 * CheckIndex(i), 8));

    int CheckIndex(int i) => (uint)i < (uint)Count ? i : throw new ArgumentOutOfRangeException(nameof(i), $"{Path}: sample {i} of {Count}");

    /// <summary>Packs the samples and replaces <paramref name="path"/> atomically (temp file in the same folder,
    /// flushed to disk, renamed), so a reader sees the old file or the whole new one.</summary>
    public static void Write(string path, ShardInfo info, IReadOnlyList<ShardSample> samples)
    {
        byte[] bytes = Pack(info, samples);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Reads and verifies a shard; a bad one gives <see cref="InvalidDataException"/> with one line naming the file.</summary>
    public static PackedShard Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: shard not found", path);
        byte[] bytes = File.ReadAllBytes(path);
        string Bad(string why) => $"{path}: corrupt shard ({why})";
        if (bytes.Length < FixedHeader + 8 || !bytes.AsSpan(0, 8).SequenceEqual(Magic))
            throw new InvalidDataException(Bad("not a packed shard: wrong magic or too short"));
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(bytes.Length - 8));
        ulong actual = XxHash64.HashToUInt64(bytes.AsSpan(0, bytes.Length - 8));
        if (stored != actual) throw new InvalidDataException(Bad($"checksum {actual:x16} differs from the stored {stored:x16}"));

        var h = bytes.AsSpan();
        int version = BinaryPrimitives.ReadInt32LittleEndian(h[8..]);
        if (version != Version) throw new InvalidDataException(Bad($"version {version}, this reader knows {Version}"));
        int shard = BinaryPrimitives.ReadInt32LittleEndian(h[12..]);
        long firstPair = BinaryPrimitives.ReadInt64LittleEndian(h[16..]);
        int pairCount = BinaryPrimitives.ReadInt32LittleEndian(h[24..]);
        int count = BinaryPrimitives.ReadInt32LittleEndian(h[28..]);
        int resolution = BinaryPrimitives.ReadInt32LittleEndian(h[32..]);
        int contextLength = BinaryPrimitives.ReadInt32LittleEndian(h[36..]);
        byte layout = h[40], tokenBytes = h[41];
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(h[42..]);
        if (layout != LayoutHwc || tokenBytes != TokenBytes) throw new InvalidDataException(Bad($"layout {layout} / token bytes {tokenBytes} unknown"));
        if (count < 0 || count > pairCount || resolution < 1 || contextLength < 1 || FixedHeader + nameLength > bytes.Length - 8)
            throw new InvalidDataException(Bad("header fields out of range"));
        int headerLength = Align8(FixedHeader + nameLength);
        long expected = headerLength + count * (24L + 4L * contextLength + 3L * resolution * resolution) + 8;
        if (expected != bytes.Length) throw new InvalidDataException(Bad($"{bytes.Length} bytes where the header implies {expected}"));
        string split = Encoding.UTF8.GetString(h.Slice(FixedHeader, nameLength));
        return new PackedShard(path, bytes, new ShardInfo(split, shard, firstPair, pairCount, resolution, contextLength), count, headerLength);
    }

    static byte[] Pack(ShardInfo info, IReadOnlyList<ShardSample> samples)
    {
        byte[] name = Encoding.UTF8.GetBytes(info.Split);
        if (name.Length > ushort.MaxValue) throw new ArgumentException($"split name of {name.Length} bytes is too long", nameof(info));
        int n = samples.Count, context = info.ContextLength, pixelLength = 3 * info.Resolution * info.Resolution;
        if (n > info.PairCount) throw new ArgumentException($"{n} samples for a slice of {info.PairCount} pairs", nameof(samples));
        int headerLength = Align8(FixedHeader + name.Length);
        long total = headerLength + n * (24L + 4L * context + pixelLength) + 8;
        if (total > Array.MaxLength) throw new ArgumentException($"a shard of {total} bytes is too large: use fewer pairs per shard", nameof(samples));
        var bytes = new byte[total];
        var h = bytes.AsSpan();
        Magic.CopyTo(h);
        BinaryPrimitives.WriteInt32LittleEndian(h[8..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(h[12..], info.Shard);
        BinaryPrimitives.WriteInt64LittleEndian(h[16..], info.FirstPair);
        BinaryPrimitives.WriteInt32LittleEndian(h[24..], info.PairCount);
        BinaryPrimitives.WriteInt32LittleEndian(h[28..], n);
        BinaryPrimitives.WriteInt32LittleEndian(h[32..], info.Resolution);
        BinaryPrimitives.WriteInt32LittleEndian(h[36..], context);
        h[40] = LayoutHwc;
        h[41] = TokenBytes;
        BinaryPrimitives.WriteUInt16LittleEndian(h[42..], (ushort)name.Length);
        name.CopyTo(h[FixedHeader..]);

        int pairsAt = headerLength, imagesAt = pairsAt + 8 * n, textsAt = imagesAt + 8 * n, tokensAt = textsAt + 8 * n;
        int pixelsAt = tokensAt + 4 * n * context;
        for (int i = 0; i < n; i++)
        {
            var s = samples[i];
            if (s.Pixels.Length != pixelLength) throw new ArgumentException($"sample {i}: {s.Pixels.Length} pixel bytes, expected {pixelLength}", nameof(samples));
            if (s.Tokens.Length != context) throw new ArgumentException($"sample {i}: {s.Tokens.Length} token ids, expected {context}", nameof(samples));
            BinaryPrimitives.WriteInt64LittleEndian(h[(pairsAt + 8 * i)..], s.PairIndex);
            BinaryPrimitives.WriteInt64LittleEndian(h[(imagesAt + 8 * i)..], s.ImageId);
            BinaryPrimitives.WriteInt64LittleEndian(h[(textsAt + 8 * i)..], s.TextId);
            for (int t = 0; t < context; t++)
                BinaryPrimitives.WriteInt32LittleEndian(h[(tokensAt + 4 * (i * context + t))..], checked((int)s.Tokens[t]));
            s.Pixels.CopyTo(h[(pixelsAt + i * pixelLength)..]);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(h[^8..], XxHash64.HashToUInt64(h[..^8]));
        return bytes;
    }

    static int Align8(int n) => (n + 7) & ~7;
}
