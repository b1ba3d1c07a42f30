using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Tests;

/// <summary>The tiny official checkpoint gives the features the official code computed, tower by tower.</summary>
public class FixtureParityTests
{
    static string Fixture(string name) => SharedFiles.Path("fixtures", "official-tiny", name);

    internal static ClipModel LoadTinyModel()
    {
        var model = ClipModel.Load(Architectures.Resolve(Fixture("arch.json")), Fixture("parity.pt"));
        model.eval();
        return model;
    }

    static Dictionary<long, float[]> ReadFeatures(string file, string idKey) =>
        File.ReadLines(Fixture(file)).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => e.GetProperty(idKey).GetInt64(), e => e.GetProperty("feature").EnumerateArray().Select(x => x.GetSingle()).ToArray());


    [Fact]
    public void Text_tower_gives_the_official_features_from_the_official_ids()
    {
        using var model = LoadTinyModel();
        var reference = ReadFeatures("ref_texts.txt_feat.jsonl", "text_id");
        var rows = File.ReadLines(Fixture("ref_tokens.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        using var ids = tensor(rows.SelectMany(r => r.GetProperty("ids").EnumerateArray().Select(x => x.GetInt64())).ToArray(), [rows.Count, 52]);
        using var _ = no_grad();
        using var features = ClipModel.Normalize(model.EncodeText(ids));
        for (int i = 0; i < rows.Count; i++)
        {
            long id = rows[i].GetProperty("text_id").GetInt64();
            double cos = Vectors.Cosine(features[i].data<float>().ToArray(), reference[id]);
            Assert.True(cos >= 0.99999, $"text {id}: cosine {cos}");
        }
    }

    [Fact]
    public void Image_tower_gives_the_official_features_from_the_official_pixels()
    {
        using var model = LoadTinyModel();
        var reference = ReadFeatures("ref_imgs.img_feat.jsonl", "image_id");
        var sd = new Dictionary<string, Tensor>();
        using var pixels = LoadSafetensor(Fixture("ref_pixels.safetensors"), "pixels", out long[] ids);
        using var _ = no_grad();
        using var features = ClipModel.Normalize(model.EncodeImage(pixels));
        for (int i = 0; i < ids.Length; i++)
        {
            double cos = Vectors.Cosine(features[i].data<float>().ToArray(), reference[ids[i]]);
            Assert.True(cos >= 0.99999, $"image {ids[i]}: cosine {cos}");
        }
    }

    internal static Tensor LoadSafetensor(string path, string name, out long[] imageIds)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength)).RootElement;
        imageIds = JsonSerializer.Deserialize<long[]>(header.GetProperty("__metadata__").GetProperty("image_ids").GetString()!)!;
        var entry = header.GetProperty(name);
        long[] shape = entry.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        long begin = entry.GetProperty("data_offsets")[0].GetInt64(), end = entry.GetProperty("data_offsets")[1].GetInt64();
        float[] data = new float[(end - begin) / 4];
        Buffer.BlockCopy(bytes, (int)(8 + headerLength + begin), data, 0, data.Length * 4);
        return tensor(data, shape);
    }
}
