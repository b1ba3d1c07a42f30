// An architecture as data: the official merged vision+text config keys, parsed and validated.
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ChineseClip.Model;

/// <summary>The architecture of a Chinese-CLIP model, with the official config key names.</summary>
public sealed record ClipConfig
{
    public required string Name { get; init; }
    public required int EmbedDim { get; init; }
    public required int ImageResolution { get; init; }
    /// <summary>ViT: one entry, the number of blocks. ModifiedResNet: blocks per stage (four entries).</summary>
    public required IReadOnlyList<int> VisionLayers { get; init; }
    public required int VisionWidth { get; init; }
    /// <summary>Null for ModifiedResNet (RN50).</summary>
    public int? VisionPatchSize { get; init; }
    public int VisionHeadWidth { get; init; } = 64;

    public required int VocabSize { get; init; }
    public required int TextHiddenSize { get; init; }
    public required int TextNumHiddenLayers { get; init; }
    public required int TextNumAttentionHeads { get; init; }
    public required int TextIntermediateSize { get; init; }
    public required int TextMaxPositionEmbeddings { get; init; }
    public int TextTypeVocabSize { get; init; } = 2;
    public string TextHiddenAct { get; init; } = "gelu";
    public double TextHiddenDropoutProb { get; init; } = 0.1;
    public double TextAttentionProbsDropoutProb { get; init; } = 0.1;
    public double TextInitializerRange { get; init; } = 0.02;

    public bool IsResNet => VisionPatchSize is null;

    // Value equality including the layer list (a record compares arrays by reference).
    public bool Equals(ClipConfig? other) =>
        other is not null && ToComparable() == other.ToComparable();

    public override int GetHashCode() => ToComparable().GetHashCode();

    string ToComparable() => string.Join("|", Name, EmbedDim, ImageResolution, string.Join(",", VisionLayers), VisionWidth,
        VisionPatchSize, VisionHeadWidth, VocabSize, TextHiddenSize, TextNumHiddenLayers, TextNumAttentionHeads,
        TextIntermediateSize, TextMaxPositionEmbeddings, TextTypeVocabSize, TextHiddenAct, TextHiddenDropoutProb,
        TextAttentionProbsDropoutProb, TextInitializerRange);

    /// <summary>Attention heads of the image tower, as the official code computes them.</summary>
    public int VisionHeads => IsResNet ? VisionWidth * 32 / 64 : VisionWidth / VisionHeadWidth;

    /// <summary>Parses a merged config (vision and text keys in one JSON object).</summary>
    public static ClipConfig FromJson(string name, string json, string? source = null)
    {
        string where = source ?? name;
        JsonObject obj;
        try
        {
            obj = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("not a JSON object");
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw new ArchitectureException($"{where}: invalid architecture JSON: {e.Message}");
        }
        return FromJson(name, obj, where);
    }

    static ClipConfig FromJson(string name, JsonObject o, string where)
    {
        int Int(string key, int? fallback = null)
        {
            JsonNode? n = o[key];
            if (n is null) return fallback ?? throw new ArchitectureException($"{where}: missing key '{key}'");
            try { return n.GetValue<int>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new ArchitectureException($"{where}: key '{key}' must be an integer, got {n.ToJsonString()}");
            }
        }
        double Dbl(string key, double fallback) => o[key] is { } n ? n.GetValue<double>() : fallback;

        var config = new ClipConfig
        {
            Name = name,
            EmbedDim = Int("embed_dim"),
            ImageResolution = Int("image_resolution"),
            VisionLayers = ParseLayers(o["vision_layers"], where),
            VisionWidth = Int("vision_width"),
            VisionPatchSize = o["vision_patch_size"] is null ? null : Int("vision_patch_size"),
            VisionHeadWidth = Int("vision_head_width", 64),
            VocabSize = Int("vocab_size"),
            TextHiddenSize = Int("text_hidden_size"),
            TextNumHiddenLayers = Int("text_num_hidden_layers"),
            TextNumAttentionHeads = Int("text_num_attention_heads"),
            TextIntermediateSize = Int("text_intermediate_size"),
            TextMaxPositionEmbeddings = Int("text_max_position_embeddings"),
            TextTypeVocabSize = Int("text_type_vocab_size", 2),
            TextHiddenAct = o["text_hidden_act"]?.GetValue<string>() ?? "gelu",
            TextHiddenDropoutProb = Dbl("text_hidden_dropout_prob", 0.1),
            TextAttentionProbsDropoutProb = Dbl("text_attention_probs_dropout_prob", 0.1),
            TextInitializerRange = Dbl("text_initializer_range", 0.02),
        };
        config.Validate(where);
        return config;
    }

    // The official RN50.json writes vision_layers as the string "[3,4,6,3]"; accept that, an array, or an integer.
    static IReadOnlyList<int> ParseLayers(JsonNode? node, string where)
    {
        if (node is null) throw new ArchitectureException($"{where}: missing key 'vision_layers'");
        try
        {
            if (node is JsonArray arr) return arr.Select(x => x!.GetValue<int>()).ToArray();
            if (node.GetValueKind() == JsonValueKind.String)
                return JsonSerializer.Deserialize<int[]>(node.GetValue<string>()) ?? throw new FormatException();
            return [node.GetValue<int>()];
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or JsonException or NullReferenceException)
        {
            throw new ArchitectureException($"{where}: key 'vision_layers' must be an integer or a list of integers, got {node.ToJsonString()}");
        }
    }

    void Validate(string where)
    {
        void Check(bool ok, string message)
        {
            if (!ok) throw new ArchitectureException($"{where}: {message}");
        }
        Check(EmbedDim > 0 && ImageResolution > 0 && VisionWidth > 0, "embed_dim, image_resolution and vision_width must be positive");
        if (IsResNet)
        {
            Check(VisionLayers.Count == 4 && VisionLayers.All(l => l > 0), "a ResNet needs vision_layers with four positive entries");
            Check(ImageResolution % 32 == 0, "a ResNet needs image_resolution divisible by 32");
        }
        else
        {
            Check(VisionLayers.Count == 1 && VisionLayers[0] > 0, "a ViT needs vision_layers as one positive integer");
            Check(VisionPatchSize > 0 && ImageResolution % VisionPatchSize == 0, "image_resolution must be a multiple of vision_patch_size");
            Check(VisionHeadWidth > 0 && VisionWidth % VisionHeadWidth == 0, "vision_width must be a multiple of vision_head_width");
        }
        Check(VocabSize > 0 && TextHiddenSize > 0 && TextNumHiddenLayers > 0, "vocab_size, text_hidden_size and text_num_hidden_layers must be positive");
        Check(TextNumAttentionHeads > 0 && TextHiddenSize % TextNumAttentionHeads == 0, "text_hidden_size must be a multiple of text_num_attention_heads");
        Check(TextHiddenAct == "gelu", $"text_hidden_act '{TextHiddenAct}' is not supported (only gelu)");
    }
}

/// <summary>An unknown architecture name or an invalid architecture file.</summary>
public sealed class ArchitectureException(string message) : Exception(message);

/// <summary>The official architectures (VISION@TEXT) and architecture files.</summary>
public static class Architectures
{
    public static readonly string[] VisionNames = ["ViT-B-16", "ViT-B-32", "ViT-L-14", "ViT-L-14-336", "ViT-H-14", "RN50"];
    public static readonly string[] TextNames = ["RoBERTa-wwm-ext-base-chinese", "RoBERTa-wwm-ext-large-chinese", "RBT3-chinese"];

    /// <summary>The five pairs the official project releases checkpoints for.</summary>
    public static readonly string[] Official =
    [
        "ViT-B-16@RoBERTa-wwm-ext-base-chinese", "ViT-L-14@RoBERTa-wwm-ext-base-chinese",
        "ViT-L-14-336@RoBERTa-wwm-ext-base-chinese", "ViT-H-14@RoBERTa-wwm-ext-large-chinese", "RN50@RBT3-chinese",
    ];

    /// <summary>Resolves `VISION@TEXT` (any known vision and text parts) or a path to a merged JSON file.</summary>
    public static ClipConfig Resolve(string nameOrFile)
    {
        if (nameOrFile.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || File.Exists(nameOrFile))
        {
            if (!File.Exists(nameOrFile)) throw new ArchitectureException($"{nameOrFile}: architecture file not found");
            return ClipConfig.FromJson(Path.GetFileNameWithoutExtension(nameOrFile), File.ReadAllText(nameOrFile), nameOrFile);
        }
        string[] parts = nameOrFile.Split('@');
        if (parts.Length != 2 || !VisionNames.Contains(parts[0]) || !TextNames.Contains(parts[1]))
            throw new ArchitectureException(
                $"unknown architecture '{nameOrFile}': use VISION@TEXT with VISION in {{{string.Join(", ", VisionNames)}}} " +
                $"and TEXT in {{{string.Join(", ", TextNames)}}}, or a .json file");
        var merged = (JsonObject)JsonNode.Parse(ReadResource(parts[0]))!;
        foreach (var (key, value) in (JsonObject)JsonNode.Parse(ReadResource(parts[1]))!)
            merged[key] = value?.DeepClone();
        return ClipConfig.FromJson(nameOrFile, merged.ToJsonString());
    }

    static string ReadResource(string name)
    {
        using Stream s = Assembly.GetExecutingAssembly().GetManifestResourceStream($"ChineseClip.Model.Configs.{name}.json")
            ?? throw new InvalidOperationException($"architecture resource {name} missing from the assembly");
        using var reader = new StreamReader(s);
        return reader.ReadToEnd();
    }
}
