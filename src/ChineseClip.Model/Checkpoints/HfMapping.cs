using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// Key mapping between the official state dict (ViT vision towers) and Hugging Face's ChineseCLIPModel. One table
/// serves both directions; the only value changes are the projection transposes and the split (or concatenation) of
/// the fused attention input projection into q/k/v along dim 0, so a round trip is bit-identical.
/// Results are new tensor handles; renamed entries share memory with the input.
/// </summary>
public static partial class HfMapping
{
    const string OfficialBlock = "visual.transformer.resblocks.";
    const string HfBlock = "vision_model.encoder.layers.";

    // An entry ending with '.' renames a prefix; any other entry renames one exact key.
    static readonly (string Official, string Hf)[] Renames =
    [
        ("bert.", "text_model."),
        ("logit_scale", "logit_scale"),
        ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
        ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
        ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
        ("visual.ln_pre.", "vision_model.pre_layrnorm."), // sic, as in transformers
        ("visual.ln_post.", "vision_model.post_layernorm."),
    ];

    // Inside one residual block (official visual.transformer.resblocks.i. <-> HF vision_model.encoder.layers.i.).
    static readonly (string Official, string Hf)[] BlockRenames =
    [
        ("attn.out_proj.", "self_attn.out_proj."),
        ("ln_1.", "layer_norm1."),
        ("ln_2.", "layer_norm2."),
        ("mlp.c_fc.", "mlp.fc1."),
        ("mlp.c_proj.", "mlp.fc2."),
    ];

    // Stored [in, out] officially and as nn.Linear weights [out, in] by HF.
    static readonly (string Official, string Hf)[] Transposed =
    [
        ("text_projection", "text_projection.weight"),
        ("visual.proj", "visual_projection.weight"),
    ];

    static readonly string[] Qkv = ["q", "k", "v"];

    [GeneratedRegex(@"^self_attn\.([qkv])_proj\.(weight|bias)$")]
    private static partial Regex HfQkv();

    /// <summary>Official keys (with or without <c>module.</c>) to HF ChineseCLIPModel keys, in the same order.</summary>
    /// <exception cref="NotSupportedException">an RN50 (ResNet) vision tower: HF has no ChineseCLIP equivalent.</exception>
    /// <exception cref="ArgumentException">keys that the mapping does not know, listed.</exception>
    public static Dictionary<string, Tensor> ToHf(IReadOnlyDictionary<string, Tensor> official)
    {
        if (official.Keys.Any(k => Strip(k).StartsWith("visual.attnpool.", StringComparison.Ordinal) || Strip(k).StartsWith("visual.layer1.", StringComparison.Ordinal)))
            throw new NotSupportedException("the state dict has an RN50 (ResNet) vision tower; Hugging Face's ChineseCLIPModel only has ViT vision towers, so it has no HF equivalent");

        var result = new Dictionary<string, Tensor>();
        var unknown = new List<string>();
        foreach (var (raw, t) in official)
        {
            string key = Strip(raw);
            if (key.StartsWith("bert.pooler.", StringComparison.Ordinal)) continue; // not part of either model
            if (Lookup(Transposed, key, forward: true) is { } transposed)
                result.Add(transposed, Transpose(t));
            else if (key.StartsWith(OfficialBlock, StringComparison.Ordinal) && SplitBlock(key[OfficialBlock.Length..]) is (var layer, var rest))
            {
                string prefix = $"{HfBlock}{layer}.";
                if (rest is "attn.in_proj_weight" or "attn.in_proj_bias")
                {
                    if (t.shape[0] % 3 != 0) throw new ArgumentException($"{key}: dim 0 ({t.shape[0]}) is not a multiple of 3");
                    var parts = t.chunk(3, 0);
                    string kind = rest.EndsWith("weight", StringComparison.Ordinal) ? "weight" : "bias";
                    for (int i = 0; i < 3; i++) result.Add($"{prefix}self_attn.{Qkv[i]}_proj.{kind}", parts[i]);
                }
                else if (Lookup(BlockRenames, rest, forward: true) is { } renamed) result.Add(prefix + renamed, t.detach());
                else unknown.Add(raw);
            }
            else if (Lookup(Renames, key, forward: true) is { } renamed) result.Add(renamed, t.detach());
            else unknown.Add(raw);
        }
        if (unknown.Count > 0)
        {
            foreach (var t in result.Values) t.Dispose();
            throw new ArgumentException("no Hugging Face name for: " + string.Join(", ", unknown));
        }
        return result;
    }

    /// <summary>
    /// HF ChineseCLIPModel keys to official keys (no <c>module.</c>), in the same order; q/k/v come back fused at the
    /// place of the first of them. The position_ids / token_type_ids buffers and the text pooler are ignored.
    /// </summary>
    public static Dictionary<string, Tensor> FromHf(IReadOnlyDictionary<string, Tensor> hf)
    {
        var slots = new List<(string Key, Tensor? Value)>();
        var fused = new Dictionary<string, (int Slot, Tensor?[] Parts)>();
        var unknown = new List<string>();
        foreach (var (key, t) in hf)
        {
            if (IsIgnored(key)) continue;
            if (Lookup(Transposed, key, forward: false) is { } transposed)
                slots.Add((transposed, Transpose(t)));
            else if (key.StartsWith(HfBlock, StringComparison.Ordinal) && SplitBlock(key[HfBlock.Length..]) is (var layer, var rest))
            {
                string prefix = $"{OfficialBlock}{layer}.";
                if (HfQkv().Match(rest) is { Success: true } m)
                {
                    string fusedKey = $"{prefix}attn.in_proj_{m.Groups[2].Value}";
                    if (!fused.TryGetValue(fusedKey, out var entry))
                    {
                        fused[fusedKey] = entry = (slots.Count, new Tensor?[3]);
                        slots.Add((fusedKey, null));
                    }
                    entry.Parts[Array.IndexOf(Qkv, m.Groups[1].Value)] = t;
                }
                else if (Lookup(BlockRenames, rest, forward: false) is { } renamed) slots.Add((prefix + renamed, t.detach()));
                else unknown.Add(key);
            }
            else if (Lookup(Renames, key, forward: false) is { } renamed) slots.Add((renamed, t.detach()));
            else unknown.Add(key);
        }
        foreach (var (fusedKey, (slot, parts)) in fused)
        {
            if (parts.Any(p => p is null))
                unknown.Add($"{fusedKey} (needs all of q_proj, k_proj, v_proj)");
            else
                slots[slot] = (fusedKey, torch.cat(parts.Select(p => p!).ToArray(), 0));
        }
        if (unknown.Count > 0)
        {
            foreach (var (_, t) in slots) t?.Dispose();
            throw new ArgumentException("no official name for: " + string.Join(", ", unknown));
        }
        return slots.ToDictionary(s => s.Key, s => s.Value!);
    }

    /// <summary>Whether the keys are Hugging Face ChineseCLIPModel keys rather than official ones.</summary>
    public static bool IsHf(IEnumerable<string> keys) =>
        keys.Any(k => k.StartsWith("text_model.", StringComparison.Ordinal) || k.StartsWith("vision_model.", StringComparison.Ordinal));

    /// <summary>Writes an official state dict as an HF ChineseCLIPModel safetensors file.</summary>
    public static void SaveSafetensors(string path, IReadOnlyDictionary<string, Tensor> official)
    {
        var hf = ToHf(official);
        try
        {
            SafetensorsFile.Save(path, hf);
        }
        finally
        {
            foreach (var t in hf.Values) t.Dispose();
        }
    }

    /// <summary>Reads an HF ChineseCLIPModel safetensors file as an official state dict.</summary>
    public static Dictionary<string, Tensor> LoadSafetensors(string path)
    {
        var hf = SafetensorsFile.Load(path);
        try
        {
            return FromHf(hf);
        }
        finally
        {
            foreach (var t in hf.Values) t.Dispose();
        }
    }

    static bool IsIgnored(string hfKey) =>
        hfKey is "text_model.embeddings.position_ids" or "text_model.embeddings.token_type_ids" or "vision_model.embeddings.position_ids"
        || hfKey.StartsWith("text_model.pooler.", StringComparison.Ordinal);

    static Tensor Transpose(Tensor t)
    {
        using var view = t.t();
        return view.contiguous();
    }

    static string Strip(string key) => key.StartsWith("module.", StringComparison.Ordinal) ? key["module.".Length..] : key;

    static (string Layer, string Tail)? SplitBlock(string afterPrefix)
    {
        int dot = afterPrefix.IndexOf('.');
        return dot > 0 && afterPrefix[..dot].All(char.IsAsciiDigit) ? (afterPrefix[..dot], afterPrefix[(dot + 1)..]) : null;
    }

    static string? Lookup((string Official, string Hf)[] table, string key, bool forward)
    {
        foreach (var (official, hf) in table)
        {
            var (from, to) = forward ? (official, hf) : (hf, official);
            if (from.EndsWith('.') ? key.StartsWith(from, StringComparison.Ordinal) : key == from)
                return to + key[from.Length..];
        }
        return null;
    }
}
