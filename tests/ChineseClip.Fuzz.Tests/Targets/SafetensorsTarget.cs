using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using ChineseClip.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>Safetensors files (an 8-byte header length, a JSON header of dtypes, shapes and offsets, the raw data)
/// mutated in the header's JSON (wrong types, missing fields, huge shapes and offsets), in the length prefix, and in
/// the raw bytes; read as `convert-model` and `train` read any checkpoint.</summary>
public sealed class SafetensorsTarget : FuzzTarget
{
    public override string Name => "checkpoint .safetensors";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        string seedPath = Path.Combine(Work, "seed.safetensors");
        using (Scalar elements = 12)
        using (var w = arange(elements, dtype: float32).reshape(3, 4))
        using (var b = ones(5, dtype: float16))
            SafetensorsFile.Save(seedPath, [new("module.w", w), new("module.b", b)]);
        byte[] seed = File.ReadAllBytes(seedPath);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(seed);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(seed, 8, (int)headerLength))!;
        byte[] data = seed[(8 + (int)headerLength)..];
        int n = 0;
        FuzzCase Case(string what, byte[] bytes) => new(what, bytes, Path.Combine(Work, $"case-{n++}.safetensors"));

        for (int i = 0; i < 40; i++)
        {
            var (what, tree) = Mutate.Json(header, random);
            yield return Case($"header: {what}", WithHeader(tree?.ToJsonString() ?? "null", data));
        }
        string[] crafted =
        [
            """{"module.w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 48]}}""",
            """{"module.w": {"dtype": "F32", "shape": [-3, 4], "data_offsets": [0, 48]}}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [48, 0]}}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 9223372036854775807]}}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [-8, 40]}}""",
            """{"module.w": {"dtype": "Q4", "shape": [3, 4], "data_offsets": [0, 48]}}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}, "module.b": {"dtype": "F16", "shape": [5], "data_offsets": [40, 50]}}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}, "module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}}""",
            """{"__metadata__": {"format": 1}}""",
            """{"__metadata__": "pt"}""",
            """[]""",
            """{}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4]}}""",
            """{"module.w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 48]}}""",
            """{"module.w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48, 96]}}""",
            Mutate.Nested(10_000),
        ];
        foreach (string text in crafted) yield return Case($"header {Short(text)}", WithHeader(text, data));
        foreach (long length in new[] { 0L, 1, 7, headerLength - 1, headerLength + 1, seed.Length, long.MaxValue, -1, 100L << 20 })
        {
            var b = (byte[])seed.Clone();
            BinaryPrimitives.WriteInt64LittleEndian(b, length);
            yield return Case($"header length {length}", b);
        }
        for (int i = 0; i < 30; i++)
        {
            var (what, bytes) = Mutate.Bytes(seed, random);
            yield return Case($"file: {what}", bytes);
        }
    }

    static string Short(string text) => text.Length <= 60 ? text : text[..57] + "...";

    static byte[] WithHeader(string json, byte[] data)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, header.Length);
        return [.. bytes, .. header, .. data];
    }

    public override void Run(FuzzCase c)
    {
        File.WriteAllBytes(c.Source!, c.Input);
        foreach (var t in CheckpointFormat.LoadAnyStateDict(c.Source!).Values) t.Dispose();
    }

    public override bool IsRefusal(Exception e) => e is CheckpointFormatException or UnsafePickleException;
}
