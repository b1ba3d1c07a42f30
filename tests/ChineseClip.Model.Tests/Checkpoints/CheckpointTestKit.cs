using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Tests.Checkpoints;

/// <summary>A scratch folder per test, and helpers to build torch-layout archives by hand and compare tensors bit for bit.</summary>
public sealed class CheckpointTestKit : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("cnclip-ckpt-").FullName;

    public string File(string name) => Path.Combine(Folder, name);

    /// <summary>A torch.save-shaped zip (<c>archive/data.pkl</c>, <c>archive/data/*</c>, <c>archive/version</c>) written with System.IO.Compression.</summary>
    public string TorchZip(string name, byte[] pickle, IReadOnlyDictionary<string, byte[]>? storages = null)
    {
        string path = File(name);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        Add(zip, "archive/data.pkl", pickle);
        foreach (var (key, bytes) in storages ?? new Dictionary<string, byte[]>()) Add(zip, "archive/data/" + key, bytes);
        Add(zip, "archive/version", Encoding.ASCII.GetBytes("3\n"));
        return path;
    }

    static void Add(ZipArchive zip, string name, byte[] bytes)
    {
        using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        s.Write(bytes);
    }

    /// <summary>Pickle bytes from parts: an int is one byte, a string its Latin-1 bytes, a byte[] itself.</summary>
    public static byte[] Pickle(params object[] parts) =>
        parts.SelectMany(p => p switch
        {
            int b => [checked((byte)b)],
            string s => Encoding.Latin1.GetBytes(s),
            byte[] bytes => bytes,
            _ => throw new ArgumentException(p.GetType().Name),
        }).ToArray();

    /// <summary>BINUNICODE: 'X', 4-byte little-endian length, UTF-8.</summary>
    public static byte[] Str(string s)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(s);
        return [(byte)'X', .. BitConverter.GetBytes(utf8.Length), .. utf8];
    }

    public static byte[] Bytes(Tensor t)
    {
        using var c = t.contiguous();
        return c.bytes.ToArray();
    }

    public static void AssertBitwiseEqual(Tensor expected, Tensor actual, string key = "")
    {
        Assert.True(expected.dtype == actual.dtype, $"{key}: dtype {expected.dtype} vs {actual.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{key}: shape [{string.Join(",", expected.shape)}] vs [{string.Join(",", actual.shape)}]");
        Assert.True(Bytes(expected).AsSpan().SequenceEqual(Bytes(actual)), $"{key}: values differ");
        using (var same = expected.eq(actual).all()) Assert.True(same.item<bool>(), $"{key}: elementwise eq is false");
    }

    public static void AssertStateDictsBitwiseEqual(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (key, t) in expected) AssertBitwiseEqual(t, actual[key], key);
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}
