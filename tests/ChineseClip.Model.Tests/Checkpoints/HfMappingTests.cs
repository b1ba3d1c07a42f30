using ChineseClip.Model.Checkpoints;
using TorchSharp;
using static ChineseClip.Model.Tests.Checkpoints.CheckpointTestKit;
using static TorchSharp.torch;

namespace ChineseClip.Model.Tests.Checkpoints;

public sealed class HfMappingTests : IDisposable
{
    static readonly string Parity = SharedFiles.Path("fixtures", "official-tiny", "parity.pt");

    readonly CheckpointTestKit _kit = new();

    [Fact]
    public void Official_to_hf_and_back_is_bitwise_identical_in_the_same_order()
    {
        var official = OfficialCheckpoint.Load(Parity).StateDict;

        var back = HfMapping.FromHf(HfMapping.ToHf(official));

        AssertStateDictsBitwiseEqual(official, back);
    }

    [Fact]
    public void Hf_keys_of_vision_layer_0_split_the_fused_attention_projection_in_three()
    {
        var official = OfficialCheckpoint.Load(Parity).StateDict;

        var hf = HfMapping.ToHf(official);

        string[] layer0 = hf.Keys.Where(k => k.StartsWith("vision_model.encoder.layers.0.", StringComparison.Ordinal)).ToArray();
        Assert.Equal(
            new[] { "q_proj.weight", "k_proj.weight", "v_proj.weight", "q_proj.bias", "k_proj.bias", "v_proj.bias", "out_proj.weight", "out_proj.bias" }
                .Select(s => "vision_model.encoder.layers.0.self_attn." + s)
                .Concat(new[] { "layer_norm1.weight", "layer_norm1.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "layer_norm2.weight", "layer_norm2.bias" }
                    .Select(s => "vision_model.encoder.layers.0." + s)),
            layer0);
        var inProj = official["visual.transformer.resblocks.0.attn.in_proj_weight"];
        AssertBitwiseEqual(inProj.narrow(0, 128, 128), hf["vision_model.encoder.layers.0.self_attn.k_proj.weight"]);
        AssertBitwiseEqual(official["text_projection"].t(), hf["text_projection.weight"]);
        AssertBitwiseEqual(official["visual.proj"].t(), hf["visual_projection.weight"]);
        Assert.Contains("vision_model.pre_layrnorm.weight", hf.Keys);
        Assert.Contains("vision_model.post_layernorm.bias", hf.Keys);
        Assert.Contains("vision_model.embeddings.patch_embedding.weight", hf.Keys);
        Assert.Contains("vision_model.embeddings.position_embedding.weight", hf.Keys);
        Assert.Contains("vision_model.embeddings.class_embedding", hf.Keys);
        Assert.Contains("text_model.encoder.layer.0.attention.self.query.weight", hf.Keys);
        Assert.Contains("logit_scale", hf.Keys);
        Assert.DoesNotContain(hf.Keys, k => k.EndsWith("position_ids", StringComparison.Ordinal));
    }

    [Fact]
    public void Hf_safetensors_file_round_trips_and_position_id_buffers_are_ignored_on_read()
    {
        var official = OfficialCheckpoint.Load(Parity).StateDict;
        string path = _kit.File("model.safetensors");
        HfMapping.SaveSafetensors(path, official);
        var withBuffers = SafetensorsFile.Load(path);
        using (Scalar textPositions = 64, imagePositions = 17)
        {
            withBuffers["text_model.embeddings.position_ids"] = torch.arange(textPositions).unsqueeze(0);
            withBuffers["vision_model.embeddings.position_ids"] = torch.arange(imagePositions).unsqueeze(0);
        }
        string buffered = _kit.File("buffers.safetensors");
        SafetensorsFile.Save(buffered, withBuffers);

        AssertStateDictsBitwiseEqual(official, HfMapping.LoadSafetensors(path));
        AssertStateDictsBitwiseEqual(official, HfMapping.LoadSafetensors(buffered));
        Assert.Equal(withBuffers.Keys, SafetensorsFile.Load(buffered).Keys);
    }

    [Fact]
    public void Any_state_dict_loads_from_official_plain_and_hf_files_under_official_keys()
    {
        var official = OfficialCheckpoint.Load(Parity).StateDict;
        string hf = _kit.File("hf.safetensors");
        HfMapping.SaveSafetensors(hf, official);
        string officialSafetensors = _kit.File("official.weights");
        SafetensorsFile.Save(officialSafetensors, official.Select(kv => KeyValuePair.Create("module." + kv.Key, kv.Value)));
        string plain = _kit.File("plain.bin");
        TorchArchiveWriter.Save(plain, official);

        AssertStateDictsBitwiseEqual(official, CheckpointFormat.LoadAnyStateDict(Parity));
        AssertStateDictsBitwiseEqual(official, CheckpointFormat.LoadAnyStateDict(hf));
        AssertStateDictsBitwiseEqual(official, CheckpointFormat.LoadAnyStateDict(officialSafetensors));
        AssertStateDictsBitwiseEqual(official, CheckpointFormat.LoadAnyStateDict(plain));
    }

    [Fact]
    public void Fp16_weights_keep_their_dtype_through_safetensors()
    {
        var official = OfficialCheckpoint.Load(Parity).StateDict.ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Float16));
        string path = _kit.File("half.safetensors");

        HfMapping.SaveSafetensors(path, official);

        AssertStateDictsBitwiseEqual(official, HfMapping.LoadSafetensors(path));
    }

    [Fact]
    public void Rn50_state_dict_is_refused_because_hf_has_no_equivalent()
    {
        var rn50 = new Dictionary<string, Tensor>
        {
            ["visual.conv1.weight"] = torch.zeros(32, 3, 3, 3),
            ["visual.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1),
            ["visual.attnpool.positional_embedding"] = torch.zeros(50, 2048),
        };

        var e = Assert.Throws<NotSupportedException>(() => HfMapping.ToHf(rn50));

        Assert.Contains("RN50", e.Message);
    }

    [Fact]
    public void Unknown_keys_are_listed_in_both_directions()
    {
        var official = new Dictionary<string, Tensor> { ["logit_scale"] = torch.zeros(1), ["visual.mystery"] = torch.zeros(1) };
        var hf = new Dictionary<string, Tensor>
        {
            ["vision_model.encoder.layers.0.self_attn.q_proj.weight"] = torch.zeros(2, 2),
            ["vision_model.encoder.layers.0.self_attn.k_proj.weight"] = torch.zeros(2, 2),
            ["other.weight"] = torch.zeros(1),
        };

        Assert.Contains("visual.mystery", Assert.Throws<ArgumentException>(() => HfMapping.ToHf(official)).Message);
        var e = Assert.Throws<ArgumentException>(() => HfMapping.FromHf(hf));
        Assert.Contains("other.weight", e.Message);
        Assert.Contains("visual.transformer.resblocks.0.attn.in_proj_weight", e.Message);
    }

    [Fact]
    public void Truncated_safetensors_file_is_refused_naming_the_file()
    {
        string path = _kit.File("full.safetensors");
        SafetensorsFile.Save(path, new Dictionary<string, Tensor> { ["a"] = torch.ones(100) });
        byte[] bytes = File.ReadAllBytes(path);
        string cut = _kit.File("cut.safetensors");
        File.WriteAllBytes(cut, bytes[..^10]);

        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Load(cut));

        Assert.Contains(cut, e.Message);
        Assert.Contains("'a'", e.Message);
    }

    public void Dispose() => _kit.Dispose();
}
