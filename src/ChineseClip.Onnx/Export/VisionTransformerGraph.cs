// The ViT image tower as an ONNX graph: the function VisionTransformer.forward computes in eval mode (no FLIP masking).
using ChineseClip.Model;
using ChineseClip.Model.Towers;
using ChineseClip.Onnx.Graph;
using static ChineseClip.Onnx.Graph.GraphBuilder;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Export;

internal static class VisionTransformerGraph
{
    const double Eps = 1e-5;

    public static void Build(GraphBuilder g, ClipConfig c, StateDict w)
    {
        int resolution = c.ImageResolution, patch = c.VisionPatchSize!.Value, width = c.VisionWidth, heads = c.VisionHeads;
        int tokens = (resolution / patch) * (resolution / patch);
        string pixels = g.Input(TowerGraphs.ImageInput, DataType.Float, "batch", 3, resolution, resolution);
        string x = g.Precision == OnnxPrecision.Fp16 ? g.Cast(pixels, DataType.Float16) : pixels;

        // Patches: [N, W, g, g] -> [N, g*g, W], each with its position.
        string conv = g.Node("Conv", [x, g.Weight("visual.conv1.weight", [width, 3, patch, patch], () => w["visual.conv1.weight"])],
            [Attr("kernel_shape", patch, patch), Attr("strides", patch, patch)]);
        string patches = g.Node("Transpose", [g.Node("Reshape", [conv, g.Int64s([0, width, -1])])], [Attr("perm", 0L, 2, 1)]);
        var positions = w["visual.positional_embedding"];
        patches = g.Node("Add", [patches, g.Weight("visual.positional_embedding.patches", [tokens, width], () => positions.narrow(0, 1, tokens))]);

        // The class token with its position, one per image of the batch.
        string cls = g.Weight("visual.class_embedding.positioned", [1, 1, width],
            () => Sum.Of(w["visual.class_embedding"], positions[0]).view(1, 1, width));
        string batch = g.Node("Slice", [g.Node("Shape", [pixels]), g.Int64s([0]), g.Int64s([1])]);
        string clsShape = g.Node("Concat", [batch, g.Int64s([1, width])], [Attr("axis", 0L)]);
        x = g.Node("Concat", [g.Node("Expand", [cls, clsShape]), patches], [Attr("axis", 1L)]);

        x = g.LayerNorm(x, "visual.ln_pre", w["visual.ln_pre.weight"], w["visual.ln_pre.bias"], Eps);
        for (int i = 0; i < c.VisionLayers[0]; i++)
        {
            string p = $"visual.transformer.resblocks.{i}";
            string h = g.LayerNorm(x, p + ".ln_1", w[p + ".ln_1.weight"], w[p + ".ln_1.bias"], Eps);
            var inWeight = w[p + ".attn.in_proj_weight"];
            var inBias = w[p + ".attn.in_proj_bias"];
            string qkv = g.MatMulAdd(h, p + ".attn.in_proj_weight.scaled.T", [width, 3 * width],
                () => Layers.ScaleQuery(inWeight, width, heads).t(), () => Layers.ScaleQuery(inBias, width, heads));
            string[] split = g.SplitLast(qkv, width, 3);
            h = g.Attention(split[0], split[1], split[2], heads, width);
            h = g.Linear(h, p + ".attn.out_proj", w[p + ".attn.out_proj.weight"], w[p + ".attn.out_proj.bias"]);
            x = g.Node("Add", [x, h]);
            h = g.LayerNorm(x, p + ".ln_2", w[p + ".ln_2.weight"], w[p + ".ln_2.bias"], Eps);
            h = g.Linear(h, p + ".mlp.c_fc", w[p + ".mlp.c_fc.weight"], w[p + ".mlp.c_fc.bias"]);
            h = g.Linear(g.QuickGelu(h), p + ".mlp.c_proj", w[p + ".mlp.c_proj.weight"], w[p + ".mlp.c_proj.bias"]);
            x = g.Node("Add", [x, h]);
        }
        string pooled = g.LayerNorm(g.Select(x, 1, 0), "visual.ln_post", w["visual.ln_post.weight"], w["visual.ln_post.bias"], Eps);
        string features = g.MatMulAdd(pooled, "visual.proj", [width, c.EmbedDim], () => w["visual.proj"], null);
        g.FeatureOutputs(features, TowerGraphs.ImageFeatures, TowerGraphs.UnnormImageFeatures, c.EmbedDim);
    }
}
