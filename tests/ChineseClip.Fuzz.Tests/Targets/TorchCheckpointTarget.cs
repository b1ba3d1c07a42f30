using System.IO.Compression;
using System.Text;
using ChineseClip.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>Official torch.save checkpoints (.pt, a zip of data.pkl and raw storages) mutated three ways: the file's
/// bytes, the pickle's bytes (re-zipped, with crafted opcodes too: a forbidden global, huge lengths, a missing memo),
/// and the archive's entries (storages cut short or missing). Read with the optimizer, as a resume does.</summary>
public sealed class TorchCheckpointTarget : FuzzTarget
{
    public override string Name => "checkpoint .pt";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        byte[] seed = SeedCheckpoint();
        int n = 0;
        FuzzCase Case(string what, byte[] bytes) => new(what, bytes, Path.Combine(Work, $"case-{n++}.pt"));

        for (int i = 0; i < 40; i++)
        {
            var (what, bytes) = Mutate.Bytes(seed, random);
            yield return Case($"file: {what}", bytes);
        }
        byte[] pickle = Entry(seed, "data.pkl");
        for (int i = 0; i < 40; i++)
        {
            var (what, bytes) = Mutate.Bytes(pickle, random, from: 2);
            yield return Case($"pickle: {what}", Rezip(seed, "data.pkl", bytes));
        }
        foreach (var (what, bytes) in CraftedPickles(pickle)) yield return Case($"pickle: {what}", Rezip(seed, "data.pkl", bytes));
        string storage = EntryNames(seed).First(e => e.Contains("/data/", StringComparison.Ordinal));
        byte[] data = Entry(seed, storage);
        yield return Case("a storage cut to half", Rezip(seed, storage, data[..(data.Length / 2)]));
        yield return Case("a storage emptied", Rezip(seed, storage, []));
        yield return Case("a storage missing", Rezip(seed, storage, null));
        yield return Case("version missing", Rezip(seed, "version", null));
        yield return Case("byteorder 'big'", Rezip(seed, "byteorder", Encoding.ASCII.GetBytes("big")));
        yield return Case("an empty file", []);
        yield return Case("a legacy (pre-zip) pickle", [0x80, 0x02, 0x8a, 0x0a, .. new byte[20]]);
    }

    public override void Run(FuzzCase c)
    {
        File.WriteAllBytes(c.Source!, c.Input);
        var checkpoint = OfficialCheckpoint.Load(c.Source!);
        foreach (var t in checkpoint.StateDict.Values) t.Dispose();
    }

    public override bool IsRefusal(Exception e) => e is CheckpointFormatException or UnsafePickleException;

    // A state dict of a few tensors (fp32 and fp16, one sharing a storage) with an AdamW-like optimizer state.
    byte[] SeedCheckpoint()
    {
        string path = Path.Combine(Work, "seed.pt");
        using Scalar elements = 12;
        using var w = arange(elements, dtype: float32).reshape(3, 4);
        using var b = ones(4, dtype: float16);
        using var view = w[1];
        var stateDict = new Dictionary<string, Tensor> { ["module.w"] = w, ["module.b"] = b, ["module.view"] = view };
        var optimizer = new Dictionary<object, object?>
        {
            ["state"] = new Dictionary<object, object?> { [0L] = new Dictionary<object, object?> { ["step"] = tensor(3f), ["exp_avg"] = zeros(3, 4) } },
            ["param_groups"] = new List<object?> { new Dictionary<object, object?> { ["lr"] = 0.001, ["params"] = new List<object?> { 0L, 1L } } },
        };
        OfficialCheckpoint.Save(path, stateDict, epoch: 2, step: 40, name: "fuzz", optimizer);
        return File.ReadAllBytes(path);
    }

    static IEnumerable<(string, byte[])> CraftedPickles(byte[] pickle)
    {
        byte[] head = pickle[..2]; // PROTO 2
        yield return ("GLOBAL os.system", [.. head, .. Encoding.ASCII.GetBytes("cos\nsystem\n(S'true'\ntR."), ]);
        yield return ("STACK_GLOBAL builtins.eval", [.. head, 0x8c, 8, .. Encoding.ASCII.GetBytes("builtins"), 0x8c, 4, .. Encoding.ASCII.GetBytes("eval"), 0x93, (byte)'.']);
        yield return ("BINUNICODE of 4 GB", [.. head, (byte)'X', 0xff, 0xff, 0xff, 0xff, (byte)'a', (byte)'.']);
        yield return ("LONG4 of 2 GB", [.. head, 0x8b, 0xff, 0xff, 0xff, 0x7f, 1, (byte)'.']);
        yield return ("BINUNICODE8 of 2^63", [.. head, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, (byte)'.']);
        yield return ("BINGET of a missing memo", [.. head, (byte)'h', 7, (byte)'.']);
        yield return ("REDUCE on an empty stack", [.. head, (byte)'R', (byte)'.']);
        yield return ("STOP on an empty stack", [.. head, (byte)'.']);
        yield return ("no STOP", [.. head, (byte)'}']);
        yield return ("100,000 nested lists", [.. head, .. Enumerable.Repeat((byte)']', 100_000), .. Enumerable.Repeat((byte)'a', 99_999), (byte)'.']);
        yield return ("100,000 MARKs", [.. head, .. Enumerable.Repeat((byte)'(', 100_000), (byte)'.']);
        yield return ("SETITEMS on a list", [.. head, (byte)']', (byte)'(', (byte)'K', 1, (byte)'K', 2, (byte)'u', (byte)'.']);
        yield return ("APPENDS on a dict", [.. head, (byte)'}', (byte)'(', (byte)'K', 1, (byte)'e', (byte)'.']);
        yield return ("an unknown opcode", [.. head, 0xfe, (byte)'.']);
        yield return ("protocol 99", [0x80, 99, (byte)'}', (byte)'.']);
        yield return ("a list, not a dict", [.. head, (byte)']', (byte)'.']);
        yield return ("epoch 2^40", Replace(pickle, "epoch", [0x8a, 6, 0, 0, 0, 0, 0, 1]));
    }

    // The pickle with the value after the key `name` (a BININT1/BININT/LONG1 int) replaced by `value`, when found.
    static byte[] Replace(byte[] pickle, string name, byte[] value)
    {
        byte[] key = [0x8c, (byte)name.Length, .. Encoding.ASCII.GetBytes(name)];
        int at = pickle.AsSpan().IndexOf(key);
        if (at < 0) return pickle;
        int v = at + key.Length;
        while (v < pickle.Length && pickle[v] is 0x94 or (byte)'q') v += pickle[v] == 0x94 ? 1 : 2; // MEMOIZE / BINPUT
        int length = pickle[v] switch { (byte)'K' => 2, (byte)'M' => 3, (byte)'J' => 5, 0x8a => 2 + pickle[v + 1], _ => 0 };
        return length == 0 ? pickle : [.. pickle[..v], .. value, .. pickle[(v + length)..]];
    }

    static IEnumerable<string> EntryNames(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return archive.Entries.Select(e => e.FullName).ToList();
    }

    static byte[] Entry(byte[] zip, string suffix)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        var entry = archive.Entries.Single(e => e.FullName.EndsWith(suffix, StringComparison.Ordinal));
        using var stream = entry.Open();
        var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>The archive with the entry ending in <paramref name="suffix"/> replaced by <paramref name="content"/>
    /// (null: left out), stored uncompressed as torch writes it.</summary>
    static byte[] Rezip(byte[] zip, string suffix, byte[]? content)
    {
        using var source = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        var output = new MemoryStream();
        using (var target = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in source.Entries)
            {
                byte[]? bytes;
                if (entry.FullName.EndsWith(suffix, StringComparison.Ordinal)) bytes = content;
                else
                {
                    using var s = entry.Open();
                    var copy = new MemoryStream();
                    s.CopyTo(copy);
                    bytes = copy.ToArray();
                }
                if (bytes is null) continue;
                using var w = target.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
                w.Write(bytes);
            }
        }
        return output.ToArray();
    }
}
