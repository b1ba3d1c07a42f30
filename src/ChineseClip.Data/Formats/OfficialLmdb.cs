// The official Chinese-CLIP LMDB layout (cn_clip/preprocess/build_lmdb_dataset.py writes it, cn_clip/training/data.py reads it):
//   {lmdb_dir}/{split}/imgs   key str(image_id) (utf-8)  -> the image's base64 text exactly as in the tsv (utf-8);
//                             key "num_images"           -> str(count)
//   {lmdb_dir}/{split}/pairs  key str(i), i = 0, 1, ...  -> pickle.dumps((image_id, text_id, text)), one per image_id of
//                                                           each text, in texts-file order then image_ids order;
//                             key "num_samples"          -> str(count)
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using LightningDB;

namespace ChineseClip.Data.Formats;

/// <summary>One (image, text) pair of a pairs database.</summary>
public readonly record struct LmdbPair(long ImageId, long TextId, string Text);

/// <summary>What one split holds: the num_images and num_samples entries.</summary>
public readonly record struct LmdbSplitCounts(string Split, long Images, long Samples);

public static class OfficialLmdb
{
    /// <summary>The official map size (1024**4): LMDB only reserves address space, the files grow as written.</summary>
    public const long MapSize = 1L << 40;

    const int CommitEvery = 1000;

    // LightningDB's bundled linux-x64 liblmdb.so needs glibc 2.38; Debian 12 has 2.36. There the system's liblmdb0
    // (liblmdb.so.0, see .ci/run) stands in. Checked before any environment is made: a LightningEnvironment whose
    // native create failed throws from its finalizer and takes the process down.
    static readonly Lazy<string?> NativeProblem = new(LoadNative);

    static string? LoadNative()
    {
        var assembly = typeof(LightningEnvironment).Assembly;
        try
        {
            NativeLibrary.SetDllImportResolver(assembly, (name, asm, searchPath) =>
                name == "lmdb" && !NativeLibrary.TryLoad(name, asm, searchPath, out _) && NativeLibrary.TryLoad("liblmdb.so.0", out IntPtr system)
                    ? system : IntPtr.Zero);
        }
        catch (InvalidOperationException) { } // a resolver is already set (by the host): it decides
        return NativeLibrary.TryLoad("lmdb", assembly, null, out _) || NativeLibrary.TryLoad("liblmdb.so.0", out _)
            ? null : "the LMDB native library does not load (on Debian/Ubuntu: apt-get install liblmdb0)";
    }

    static void EnsureNative()
    {
        if (NativeProblem.Value is { } problem) throw new DllNotFoundException(problem);
    }
    static readonly byte[] NumImagesKey = "num_images"u8.ToArray();
    static readonly byte[] NumSamplesKey = "num_samples"u8.ToArray();

    /// <summary>Builds {lmdbDir}/{split}/imgs and /pairs from {dataDir}/{split}_imgs.tsv and {split}_texts.jsonl, for
    /// each split. Bad lines and splits whose files are missing are reported through <paramref name="onError"/> (one
    /// line each) and skipped; the other splits still build. Returns the counts of the splits built.</summary>
    public static IReadOnlyList<LmdbSplitCounts> Build(string dataDir, string lmdbDir, IEnumerable<string> splits, Action<string> onError)
    {
        var built = new List<LmdbSplitCounts>();
        foreach (string split in splits.Select(s => s.Trim()).Where(s => s.Length > 0).Distinct())
        {
            string tsv = Path.Combine(dataDir, $"{split}_imgs.tsv"), jsonl = Path.Combine(dataDir, $"{split}_texts.jsonl");
            string? missing = !File.Exists(tsv) ? tsv : !File.Exists(jsonl) ? jsonl : null;
            if (missing != null)
            {
                onError($"split '{split}': {missing}: file not found");
                continue;
            }
            built.Add(BuildSplit(split, tsv, jsonl, lmdbDir, e => onError(e.ToString())));
        }
        return built;
    }

    static LmdbSplitCounts BuildSplit(string split, string tsv, string jsonl, string lmdbDir, Action<RecordError> onError)
    {
        // Build into a fresh sibling folder and rename it into place at the end: a crash or a bad run never leaves a
        // half-written split where a trainer would open it (LMDB files hold no path, so the rename is safe once closed).
        Directory.CreateDirectory(lmdbDir);
        string final = Path.Combine(lmdbDir, split), temp = Path.Combine(lmdbDir, $"{split}.tmp-{Guid.NewGuid():N}");
        try
        {
            long samples = 0, images = 0;
            using (var pairs = Writer.Open(Path.Combine(temp, "pairs")))
            {
                foreach (var text in TextJsonl.Read(jsonl, onError))
                    foreach (long imageId in text.ImageIds)
                        pairs.Put(Encoding.UTF8.GetBytes(samples++.ToString()), PairPickle.Write(imageId, text.TextId, text.Text));
                pairs.Put(NumSamplesKey, Encoding.UTF8.GetBytes(samples.ToString()));
                pairs.Complete();
            }
            using (var imgs = Writer.Open(Path.Combine(temp, "imgs")))
            {
                foreach (var (record, base64) in ImageTsv.ReadWithText(tsv, onError))
                {
                    imgs.Put(Encoding.UTF8.GetBytes(record.ImageId.ToString()), Encoding.UTF8.GetBytes(base64));
                    images++;
                }
                imgs.Put(NumImagesKey, Encoding.UTF8.GetBytes(images.ToString()));
                imgs.Complete();
            }
            if (Directory.Exists(final))
            {
                string old = Path.Combine(lmdbDir, $"{split}.old-{Guid.NewGuid():N}");
                Directory.Move(final, old);
                Directory.Move(temp, final);
                Directory.Delete(old, recursive: true);
            }
            else Directory.Move(temp, final);
            return new LmdbSplitCounts(split, images, samples);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>num_images and num_samples of {splitDir}/imgs and {splitDir}/pairs.</summary>
    public static LmdbSplitCounts ReadCounts(string splitDir)
    {
        using var imgs = Reader.Open(Path.Combine(splitDir, "imgs"));
        using var pairs = Reader.Open(Path.Combine(splitDir, "pairs"));
        return new LmdbSplitCounts(Path.GetFileName(Path.TrimEndingDirectorySeparator(splitDir)),
            ParseCount(imgs, NumImagesKey), ParseCount(pairs, NumSamplesKey));
    }

    /// <summary>Every pair of {splitDir}/pairs, in key order 0 .. num_samples-1. A record that is not a pickled
    /// (image_id, text_id, text) is reported through <paramref name="onError"/> (naming its key) and left out; a missing
    /// key means the count and the records disagree, and the split cannot be read.</summary>
    public static IReadOnlyList<LmdbPair> ReadPairs(string splitDir, Action<string> onError)
    {
        using var pairs = Reader.Open(Path.Combine(splitDir, "pairs"));
        long count = ParseCount(pairs, NumSamplesKey);
        var result = new List<LmdbPair>();
        for (long i = 0; i < count; i++)
        {
            byte[] value = pairs.Get(Encoding.UTF8.GetBytes(i.ToString()))
                ?? throw new InvalidDataException($"{splitDir}/pairs: key {i} missing (num_samples {count})");
            try
            {
                result.Add(PairPickle.Read(value));
            }
            catch (InvalidDataException e)
            {
                onError($"{splitDir}/pairs: key {i}: {e.Message}");
            }
        }
        return result;
    }

    /// <summary>The base64 text of one image of {splitDir}/imgs, or null when the id is absent.</summary>
    public static string? ReadImage(string splitDir, long imageId)
    {
        using var imgs = Reader.Open(Path.Combine(splitDir, "imgs"));
        byte[]? value = imgs.Get(Encoding.UTF8.GetBytes(imageId.ToString()));
        return value is null ? null : Encoding.UTF8.GetString(value);
    }

    /// <summary>Every image of {splitDir}/imgs in key order (the order the official eval loader reads them in),
    /// decoded from base64; entries that are not valid base64 are reported and skipped.</summary>
    public static IEnumerable<ImageRecord> ReadImages(string splitDir, Action<string> onError)
    {
        using var imgs = Reader.Open(Path.Combine(splitDir, "imgs"));
        foreach (var (key, value) in imgs.All())
        {
            string id = Encoding.UTF8.GetString(key);
            if (id == Encoding.UTF8.GetString(NumImagesKey)) continue;
            if (!long.TryParse(id, out long imageId)) { onError($"{splitDir}/imgs: key '{id}' is not an image id"); continue; }
            byte[]? bytes = Base64.Decode(Encoding.UTF8.GetString(value).Trim());
            if (bytes is null) { onError($"{splitDir}/imgs: image {imageId}: invalid base64"); continue; }
            yield return new ImageRecord(imageId, bytes, 0);
        }
    }

    static long ParseCount(Reader db, byte[] key)
    {
        byte[] value = db.Get(key) ?? throw new InvalidDataException($"{db.Path}: no '{Encoding.UTF8.GetString(key)}' entry");
        return long.TryParse(Encoding.UTF8.GetString(value), out long n) && n >= 0
            ? n : throw new InvalidDataException($"{db.Path}: '{Encoding.UTF8.GetString(key)}' is not a count");
    }

    /// <summary>One LMDB environment written in transactions of <see cref="CommitEvery"/> puts (as the official script).</summary>
    sealed class Writer : IDisposable
    {
        readonly LightningEnvironment _env;
        readonly LightningDatabase _db;
        LightningTransaction _txn;
        int _pending;

        Writer(LightningEnvironment env)
        {
            _env = env;
            _txn = env.BeginTransaction();
            _db = _txn.OpenDatabase(configuration: new DatabaseConfiguration { Flags = DatabaseOpenFlags.Create });
        }

        public static Writer Open(string path)
        {
            EnsureNative();
            Directory.CreateDirectory(path);
            var env = new LightningEnvironment(path, new EnvironmentConfiguration { MapSize = MapSize });
            env.Open();
            return new Writer(env);
        }

        public void Put(byte[] key, byte[] value)
        {
            _txn.Put(_db, key, value).ThrowOnError();
            if (++_pending < CommitEvery) return;
            _txn.Commit().ThrowOnError();
            _txn.Dispose();
            _txn = _env.BeginTransaction();
            _pending = 0;
        }

        /// <summary>Commits what is pending; a writer disposed without it aborts the open transaction.</summary>
        public void Complete() => _txn.Commit().ThrowOnError();

        public void Dispose()
        {
            _txn.Dispose();
            _db.Dispose();
            _env.Dispose();
        }
    }

    sealed class Reader : IDisposable
    {
        readonly LightningEnvironment _env;
        readonly LightningTransaction _txn;
        readonly LightningDatabase _db;
        public string Path { get; }

        Reader(string path, LightningEnvironment env)
        {
            Path = path;
            _env = env;
            _txn = env.BeginTransaction(TransactionBeginFlags.ReadOnly);
            _db = _txn.OpenDatabase();
        }

        public static Reader Open(string path)
        {
            if (!File.Exists(System.IO.Path.Combine(path, "data.mdb"))) throw new DirectoryNotFoundException($"{path}: no LMDB database (data.mdb) here");
            EnsureNative();
            var env = new LightningEnvironment(path);
            env.Open(EnvironmentOpenFlags.ReadOnly | EnvironmentOpenFlags.NoLock);
            return new Reader(path, env);
        }

        /// <summary>All entries in key order.</summary>
        public IEnumerable<(byte[] Key, byte[] Value)> All()
        {
            using var cursor = _txn.CreateCursor(_db);
            while (true)
            {
                var (code, key, value) = cursor.Next();
                if (code == MDBResultCode.NotFound) yield break;
                code.ThrowOnError();
                yield return (key.CopyToNewArray(), value.CopyToNewArray());
            }
        }

        public byte[]? Get(byte[] key)
        {
            var (code, _, value) = _txn.Get(_db, key);
            if (code == MDBResultCode.NotFound) return null;
            code.ThrowOnError();
            return value.CopyToNewArray();
        }

        public void Dispose()
        {
            _txn.Dispose();
            _db.Dispose();
            _env.Dispose();
        }
    }
}

/// <summary>The pickle of one (image_id, text_id, text) tuple, byte-identical to Python 3.8+'s pickle.dumps (protocol 4).
/// Hand-written instead of a pickle library because the .NET one (Razorvine.Pickle) writes protocol 2 with other
/// opcodes (no FRAME/SHORT_BINUNICODE/MEMOIZE), so its bytes would differ from the official files; this one tuple shape
/// needs only a dozen opcodes. Reading accepts protocols 2-5 (what any Python writes for such a tuple).</summary>
public static class PairPickle
{
    const byte Proto = 0x80, Frame = 0x95, BinInt = (byte)'J', BinInt1 = (byte)'K', BinInt2 = (byte)'M', Long1 = 0x8a, Long4 = 0x8b,
        ShortBinUnicode = 0x8c, BinUnicode = (byte)'X', BinUnicode8 = 0x8d, Memoize = 0x94, BinPut = (byte)'q', LongBinPut = (byte)'r',
        Mark = (byte)'(', Tuple = (byte)'t', Tuple3 = 0x87, Stop = (byte)'.';
    const int FrameSizeMin = 4, FrameSizeTarget = 64 * 1024;

    public static byte[] Write(long imageId, long textId, string text)
    {
        var ints = new List<byte>();
        WriteInt(ints, imageId);
        WriteInt(ints, textId);
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        var header = new List<byte>();
        if (utf8.Length < 256) header.AddRange([ShortBinUnicode, (byte)utf8.Length]);
        else { header.Add(BinUnicode); header.AddRange(LittleEndian((uint)utf8.Length)); }
        byte[] tail = [Memoize, Tuple3, Memoize, Stop];

        var output = new List<byte> { Proto, 4 };
        if (utf8.Length < FrameSizeTarget)
        {
            AddFrame(output, [.. ints, .. header, .. utf8, .. tail]);
        }
        else
        {
            // Python writes a large string outside any frame: the frame so far, the opcode and data bare, then a new frame.
            AddFrame(output, [.. ints]);
            output.AddRange(header);
            output.AddRange(utf8);
            AddFrame(output, tail);
        }
        return [.. output];
    }

    static void AddFrame(List<byte> output, byte[] payload)
    {
        if (payload.Length >= FrameSizeMin)
        {
            output.Add(Frame);
            output.AddRange(LittleEndian((ulong)payload.Length));
        }
        output.AddRange(payload);
    }

    static void WriteInt(List<byte> output, long value)
    {
        if (value is >= 0 and <= 0xff) output.AddRange([BinInt1, (byte)value]);
        else if (value is >= 0 and <= 0xffff) output.AddRange([BinInt2, (byte)value, (byte)(value >> 8)]);
        else if (value is >= int.MinValue and <= int.MaxValue) { output.Add(BinInt); output.AddRange(LittleEndian((uint)(int)value)); }
        else
        {
            // LONG1: the shortest little-endian two's complement bytes.
            byte[] bytes = new BigInteger(value).ToByteArray(isUnsigned: false, isBigEndian: false);
            output.AddRange([Long1, (byte)bytes.Length, .. bytes]);
        }
    }

    static byte[] LittleEndian(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return b; }
    static byte[] LittleEndian(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); return b; }

    /// <summary>Reads a pickled (int, int, str) tuple of protocol 2 to 5; anything else is InvalidDataException.</summary>
    public static LmdbPair Read(ReadOnlySpan<byte> data)
    {
        var stack = new List<object>();
        var marks = new Stack<int>();
        int p = 0;
        ReadOnlySpan<byte> Take(ReadOnlySpan<byte> d, int n, ref int pos)
        {
            if (n < 0 || pos + n > d.Length) throw new InvalidDataException("pickle: truncated");
            var s = d.Slice(pos, n);
            pos += n;
            return s;
        }
        while (true)
        {
            byte op = Take(data, 1, ref p)[0];
            switch (op)
            {
                case Proto:
                    int protocol = Take(data, 1, ref p)[0];
                    if (protocol is < 2 or > 5) throw new InvalidDataException($"pickle: protocol {protocol} not supported (2 to 5)");
                    break;
                case Frame: Take(data, 8, ref p); break;
                case BinInt: stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(data, 4, ref p))); break;
                case BinInt1: stack.Add((long)Take(data, 1, ref p)[0]); break;
                case BinInt2: stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(data, 2, ref p))); break;
                case Long1: stack.Add(ToLong(Take(data, Take(data, 1, ref p)[0], ref p))); break;
                case Long4: stack.Add(ToLong(Take(data, BinaryPrimitives.ReadInt32LittleEndian(Take(data, 4, ref p)), ref p))); break;
                case ShortBinUnicode: stack.Add(Utf8(Take(data, Take(data, 1, ref p)[0], ref p))); break;
                case BinUnicode: stack.Add(Utf8(Take(data, Length(BinaryPrimitives.ReadUInt32LittleEndian(Take(data, 4, ref p))), ref p))); break;
                case BinUnicode8: stack.Add(Utf8(Take(data, Length(BinaryPrimitives.ReadUInt64LittleEndian(Take(data, 8, ref p))), ref p))); break;
                case Memoize: break;
                case BinPut: Take(data, 1, ref p); break;
                case LongBinPut: Take(data, 4, ref p); break;
                case Mark: marks.Push(stack.Count); break;
                case Tuple3: Collapse(stack, stack.Count - 3); break;
                case Tuple:
                    if (marks.Count == 0) throw new InvalidDataException("pickle: TUPLE without MARK");
                    Collapse(stack, marks.Pop());
                    break;
                case Stop:
                    if (stack is [object[] and [long imageId, long textId, string text]]) return new LmdbPair(imageId, textId, text);
                    throw new InvalidDataException("pickle: expected a tuple (int, int, str)");
                default: throw new InvalidDataException($"pickle: opcode 0x{op:x2} not expected in an (int, int, str) tuple");
            }
        }
    }

    static void Collapse(List<object> stack, int start)
    {
        if (start < 0) throw new InvalidDataException("pickle: stack underflow");
        object[] items = stack.GetRange(start, stack.Count - start).ToArray();
        stack.RemoveRange(start, stack.Count - start);
        stack.Add(items);
    }

    static long ToLong(ReadOnlySpan<byte> bytes)
    {
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        if (value < long.MinValue || value > long.MaxValue) throw new InvalidDataException("pickle: integer beyond 64 bits");
        return (long)value;
    }

    // A length beyond what a span holds is past the end of any record: Take reports it as truncated.
    static int Length(ulong n) => n > int.MaxValue ? -1 : (int)n;

    static string Utf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException("pickle: the text is not UTF-8");
        }
    }
}
