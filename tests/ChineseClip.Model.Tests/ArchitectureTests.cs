using TorchSharp;

namespace ChineseClip.Model.Tests;

public class ArchitectureTests
{
    static List<(string Key, long[] Shape, string Dtype)> ReadKeyList(string file) =>
        File.ReadLines(SharedFiles.Path("reference", file))
            .Where(l => !l.StartsWith('#') && l.Length > 0)
            .Select(l => l.Split('\t'))
            .Select(p => (p[0], p[1].Trim('[', ']').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(long.Parse).ToArray(), p[2]))
            .ToList();

    static void AssertKeysAndShapes(string arch, string keyFile)
    {
        var expected = ReadKeyList(keyFile);
        using var model = new ClipModel(Architectures.Resolve(arch));
        var actual = model.state_dict();
        var missing = expected.Select(e => e.Key).Except(actual.Keys).ToList();
        var unexpected = actual.Keys.Except(expected.Select(e => e.Key)).ToList();
        Assert.True(missing.Count == 0 && unexpected.Count == 0,
            $"missing: {string.Join(", ", missing.Take(10))}; unexpected: {string.Join(", ", unexpected.Take(10))}");
        foreach (var (key, shape, dtype) in expected)
        {
            Assert.True(shape.SequenceEqual(actual[key].shape), $"{key}: expected [{string.Join(",", shape)}], got [{string.Join(",", actual[key].shape)}]");
            Assert.Equal(dtype == "int64" ? torch.ScalarType.Int64 : torch.ScalarType.Float32, actual[key].dtype);
        }
    }

    [Fact]
    public void ViT_B_16_with_RoBERTa_base_has_every_official_key_and_shape() =>
        AssertKeysAndShapes("ViT-B-16@RoBERTa-wwm-ext-base-chinese", "state_dict_keys_vit-b-16.tsv");

    [Fact]
    public void RN50_with_RBT3_has_every_official_key_and_shape() =>
        AssertKeysAndShapes("RN50@RBT3-chinese", "state_dict_keys_rn50.tsv");

    [Fact]
    public void ViT_B_16_has_the_published_parameter_count()
    {
        using var model = new ClipModel(Architectures.Resolve("ViT-B-16@RoBERTa-wwm-ext-base-chinese"));
        Assert.Equal(188_262_913L, model.parameters().Sum(p => p.numel()));
    }

    [Theory]
    [InlineData("ViT-B-16@RoBERTa-wwm-ext-base-chinese", 512, 224, 12, 12)]
    [InlineData("ViT-L-14@RoBERTa-wwm-ext-base-chinese", 768, 224, 16, 12)]
    [InlineData("ViT-L-14-336@RoBERTa-wwm-ext-base-chinese", 768, 336, 16, 12)]
    [InlineData("ViT-H-14@RoBERTa-wwm-ext-large-chinese", 1024, 224, 16, 24)]
    [InlineData("RN50@RBT3-chinese", 1024, 224, 32, 3)]
    public void Every_official_architecture_resolves_with_its_facts(string name, int embed, int resolution, int visionHeads, int textLayers)
    {
        var c = Architectures.Resolve(name);
        Assert.Equal((embed, resolution, visionHeads, textLayers), (c.EmbedDim, c.ImageResolution, c.VisionHeads, c.TextNumHiddenLayers));
    }

    [Fact]
    public void The_official_merged_json_files_resolve_like_the_built_in_names()
    {
        // The fixture's arch.json is a merged vision+text config in the official key names.
        var tiny = Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json"));
        Assert.Equal((64, 64, 2, 128, 16, 2), (tiny.EmbedDim, tiny.ImageResolution, tiny.VisionHeads, tiny.VisionWidth, tiny.VisionPatchSize!.Value, tiny.TextNumAttentionHeads));
        // The official RN50.json writes vision_layers as a string; the merged official files parse to our numbers.
        foreach (var (vision, text) in new[] { ("RN50", "RBT3-chinese"), ("ViT-H-14", "RoBERTa-wwm-ext-large-chinese") })
        {
            string merged = MergeOfficial(vision, text);
            var fromFile = ClipConfig.FromJson($"{vision}@{text}", merged);
            Assert.Equal(Architectures.Resolve($"{vision}@{text}"), fromFile);
        }
    }

    static string MergeOfficial(string vision, string text)
    {
        var v = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(SharedFiles.Path("reference", "model_configs", vision + ".json")))!.AsObject();
        foreach (var (k, val) in System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(SharedFiles.Path("reference", "model_configs", text + ".json")))!.AsObject())
            v[k] = val?.DeepClone();
        return v.ToJsonString();
    }

    [Theory]
    [InlineData("ViT-B-99@RoBERTa-wwm-ext-base-chinese", "unknown architecture 'ViT-B-99@RoBERTa-wwm-ext-base-chinese'")]
    [InlineData("ViT-B-16", "use VISION@TEXT")]
    [InlineData("/nonexistent/arch.json", "/nonexistent/arch.json: architecture file not found")]
    public void Unknown_architectures_are_refused_with_a_clear_message(string name, string expected)
    {
        var e = Assert.Throws<ArchitectureException>(() => Architectures.Resolve(name));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void An_architecture_file_with_a_bad_key_names_the_file_and_key()
    {
        string path = Path.Combine(Path.GetTempPath(), $"arch-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"embed_dim": "wide", "image_resolution": 64}""");
        try
        {
            var e = Assert.Throws<ArchitectureException>(() => Architectures.Resolve(path));
            Assert.Equal($"{path}: key 'embed_dim' must be an integer, got \"wide\"", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Forward_gives_unit_features_of_the_embedding_size_for_both_tower_kinds()
    {
        foreach (string arch in new[] { SharedFiles.Path("fixtures", "official-tiny", "arch.json") })
        {
            using var model = new ClipModel(Architectures.Resolve(arch));
            model.eval();
            using var pixels = torch.randn(2, 3, 64, 64);
            using var ids = torch.tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102 }, [2, 4]);
            var output = model.forward(pixels, ids);
            Assert.Equal(new long[] { 2, 64 }, output.ImageFeatures.shape);
            Assert.Equal(new long[] { 2, 64 }, output.TextFeatures.shape);
            Assert.Equal(1.0, output.TextFeatures.norm(1).mean().item<float>(), 5);
            Assert.Equal(1 / 0.07, output.LogitScale.item<float>(), 3);
        }
    }
}
