// The official-tiny fixture (a small Chinese-CLIP checkpoint with the official code's pixels, ids and features) and
// helpers to run an exported graph with ONNX Runtime.
using System.Text.Json;
using ChineseClip.Model;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Onnx.Tests;

public static class TinyFixture
{
    public static string Path(string name) => SharedFiles.Path("fixtures", "official-tiny", name);

    public static ClipModel Load()
    {
        var model = ClipModel.Load(Architectures.Resolve(Path("arch.json")), Path("parity.pt"));
        model.eval();
        return model;
    }

    /// <summary>The official pixels [6, 3, 64, 64], row-major.</summary>
    public static float[] Pixels(out int count)
    {
        byte[] bytes = File.ReadAllBytes(Path("ref_pixels.safetensors"));
        long headerLength = BitConverter.ToInt64(bytes, 0);
        var entry = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength)).RootElement.GetProperty("pixels");
        count = (int)entry.GetProperty("shape")[0].GetInt64();
        long begin = entry.GetProperty("data_offsets")[0].GetInt64(), end = entry.GetProperty("data_offsets")[1].GetInt64();
        var data = new float[(end - begin) / 4];
        Buffer.BlockCopy(bytes, (int)(8 + headerLength + begin), data, 0, data.Length * 4);
        return data;
    }

    /// <summary>The official token ids of the fixture's texts, without padding.</summary>
    public static List<long[]> Texts() =>
        File.ReadLines(Path("ref_tokens.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt64()).Where(id => id != 0).ToArray())
            .ToList();

    /// <summary>The official features of the fixture (ref_imgs.img_feat.jsonl / ref_texts.txt_feat.jsonl) by id.</summary>
    public static Dictionary<long, float[]> OfficialFeatures(string file, string idKey) =>
        File.ReadLines(Path(file)).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => e.GetProperty(idKey).GetInt64(), e => e.GetProperty("feature").EnumerateArray().Select(x => x.GetSingle()).ToArray());

    /// <summary>Ids in the fixture's order: of the images in ref_pixels.safetensors, of the texts in ref_tokens.jsonl.</summary>
    public static long[] ImageIds()
    {
        byte[] bytes = File.ReadAllBytes(Path("ref_pixels.safetensors"));
        long headerLength = BitConverter.ToInt64(bytes, 0);
        string ids = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength)).RootElement.GetProperty("__metadata__").GetProperty("image_ids").GetString()!;
        return JsonSerializer.Deserialize<long[]>(ids)!;
    }

    public static long[] TextIds() =>
        File.ReadLines(Path("ref_tokens.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text_id").GetInt64()).ToArray();

    /// <summary>TorchSharp's normalised features of each row.</summary>
    public static float[][] TorchImages(ClipModel model, float[] pixels, int count)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int r = model.Config.ImageResolution;
        var f = ClipModel.Normalize(model.EncodeImage(tensor(pixels, [count, 3, r, r])));
        return Rows(f.contiguous().data<float>().ToArray(), count);
    }

    public static float[][] TorchTexts(ClipModel model, IReadOnlyList<long[]> ids, int length)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var f = ClipModel.Normalize(model.EncodeText(tensor(Pad(ids, length), [ids.Count, length])));
        return Rows(f.contiguous().data<float>().ToArray(), ids.Count);
    }

    public static long[] Pad(IReadOnlyList<long[]> ids, int length)
    {
        var data = new long[ids.Count * length];
        for (int i = 0; i < ids.Count; i++) ids[i].CopyTo(data, i * length);
        return data;
    }

    public static float[][] Rows(float[] flat, int count) =>
        Enumerable.Range(0, count).Select(i => flat.AsSpan(i * (flat.Length / count), flat.Length / count).ToArray()).ToArray();

    /// <summary>Runs one graph with ONNX Runtime (CPU); returns every output by name.</summary>
    public static Dictionary<string, float[]> Run(InferenceSession session, string input, OrtValue value)
    {
        using var outputs = session.Run(new RunOptions(), [input], [value], session.OutputNames);
        return session.OutputNames.Zip(outputs).ToDictionary(p => p.First, p => p.Second.GetTensorDataAsSpan<float>().ToArray());
    }

    public static Dictionary<string, float[]> RunImages(InferenceSession session, float[] pixels, int count, int resolution)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(pixels, [count, 3, resolution, resolution]);
        return Run(session, "pixel_values", value);
    }

    public static Dictionary<string, float[]> RunTexts(InferenceSession session, IReadOnlyList<long[]> ids, int length)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(Pad(ids, length), [ids.Count, length]);
        return Run(session, "input_ids", value);
    }

    public static InferenceSession Session(string path) => new(path, new SessionOptions { IntraOpNumThreads = 2 });
}
