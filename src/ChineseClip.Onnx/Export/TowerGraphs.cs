// The names a deployed graph is used by (inputs, outputs, files) and the choice of graph per tower.
using ChineseClip.Model;
using ChineseClip.Onnx.Graph;

namespace ChineseClip.Onnx.Export;

public static class TowerGraphs
{
    public const string ImageFile = "image.onnx", TextFile = "text.onnx";

    /// <summary>[batch, 3, R, R] float32 normalised pixels (the official eval transform).</summary>
    public const string ImageInput = "pixel_values";

    /// <summary>[batch, length] int64 token ids, [CLS] ... [SEP] padded with [PAD] = 0.</summary>
    public const string TextInput = "input_ids";

    /// <summary>[batch, embed_dim] float32, L2-normalised.</summary>
    public const string ImageFeatures = "image_features", TextFeatures = "text_features";

    /// <summary>[batch, embed_dim] float32, as the towers compute them (the official exporter's outputs).</summary>
    public const string UnnormImageFeatures = "unnorm_image_features", UnnormTextFeatures = "unnorm_text_features";

    internal static GraphBuilder Image(ClipConfig config, StateDict weights, int opset, OnnxPrecision precision)
    {
        var g = new GraphBuilder("image", opset, precision);
        if (config.IsResNet) ModifiedResNetGraph.Build(g, config, weights);
        else VisionTransformerGraph.Build(g, config, weights);
        return g;
    }

    internal static GraphBuilder Text(ClipConfig config, StateDict weights, int opset, OnnxPrecision precision)
    {
        var g = new GraphBuilder("text", opset, precision);
        BertGraph.Build(g, config, weights);
        return g;
    }
}
