// What an exported graph says about itself (ONNX model metadata_props): enough to use it without the checkpoint.
using System.Text.Json.Nodes;
using ChineseClip.Model;

namespace ChineseClip.Onnx.Export;

public static class OnnxMetadata
{
    /// <summary>The architecture's name (VISION@TEXT or the .json file's name).</summary>
    public const string Arch = "arch";
    /// <summary>The merged architecture JSON in the official key names (ClipConfig.FromJson reads it back).</summary>
    public const string ArchJson = "arch_json";
    /// <summary>"image" or "text".</summary>
    public const string Tower = "tower";
    public const string EmbedDim = "embed_dim";
    public const string ImageResolution = "image_resolution";
    /// <summary>The text length the model is used with, [CLS] and [SEP] included (52 officially).</summary>
    public const string ContextLength = "context_length";
    /// <summary>The logit_scale parameter (a log): similarities are multiplied by exp(logit_scale).</summary>
    public const string LogitScale = "logit_scale";
    public const string LogitScaleExp = "logit_scale_exp";
    public const string VocabSize = "vocab_size";
    /// <summary>SHA-256 (hex) of the vocab.txt whose ids the text tower takes.</summary>
    public const string VocabSha256 = "vocab_sha256";
    /// <summary>SHA-256 (hex) of the checkpoint file the weights came from, and its file name.</summary>
    public const string CheckpointSha256 = "checkpoint_sha256";
    public const string Checkpoint = "checkpoint";
    /// <summary>"fp32" or "fp16" (the weights and the computation; inputs and outputs are float32 either way).</summary>
    public const string Precision = "precision";
    public const string PadId = "pad_id";

    /// <summary>SHA-256 of the official Chinese-CLIP vocab.txt (21,128 lines), which every official text tower uses.</summary>
    public const string OfficialVocabSha256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c";

    /// <summary>The architecture as the official merged config keys, a JSON object.</summary>
    public static string ToArchJson(ClipConfig c)
    {
        var o = new JsonObject
        {
            ["embed_dim"] = c.EmbedDim,
            ["image_resolution"] = c.ImageResolution,
            ["vision_layers"] = c.IsResNet ? new JsonArray(c.VisionLayers.Select(l => (JsonNode)l).ToArray()) : c.VisionLayers[0],
            ["vision_width"] = c.VisionWidth,
            ["vision_patch_size"] = c.VisionPatchSize,
            ["vision_head_width"] = c.VisionHeadWidth,
            ["vocab_size"] = c.VocabSize,
            ["text_hidden_size"] = c.TextHiddenSize,
            ["text_num_hidden_layers"] = c.TextNumHiddenLayers,
            ["text_num_attention_heads"] = c.TextNumAttentionHeads,
            ["text_intermediate_size"] = c.TextIntermediateSize,
            ["text_max_position_embeddings"] = c.TextMaxPositionEmbeddings,
            ["text_type_vocab_size"] = c.TextTypeVocabSize,
            ["text_hidden_act"] = c.TextHiddenAct,
            ["text_hidden_dropout_prob"] = c.TextHiddenDropoutProb,
            ["text_attention_probs_dropout_prob"] = c.TextAttentionProbsDropoutProb,
            ["text_initializer_range"] = c.TextInitializerRange,
        };
        return o.ToJsonString();
    }
}
