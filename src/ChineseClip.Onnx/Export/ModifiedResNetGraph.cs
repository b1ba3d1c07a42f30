// The RN50 image tower (ModifiedResNet) as an ONNX graph, BatchNorm in eval mode folded into the convolutions
// (w * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var + eps), computed in float64), attention pooling last.
using ChineseClip.Model;
using ChineseClip.Model.Towers;
using ChineseClip.Onnx.Graph;
using static ChineseClip.Onnx.Graph.GraphBuilder;
using TorchSharp;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Export;

internal static class ModifiedResNetGraph
{
    /// <summary>nn.BatchNorm2d's default epsilon, which ModifiedResNet's BatchNorm layers use.</summary>
    const double BatchNormEps = 1e-5;
    static readonly Scalar HeldBatchNormEps = BatchNormEps;

    public static void Build(GraphBuilder g, ClipConfig c, StateDict w)
    {
        int resolution = c.ImageResolution, width = c.VisionWidth;
        string pixels = g.Input(TowerGraphs.ImageInput, DataType.Float, "batch", 3, resolution, resolution);
        string x = g.Precision == OnnxPrecision.Fp16 ? g.Cast(pixels, DataType.Float16) : pixels;

        x = g.Node("Relu", [ConvBn(g, w, x, "visual.conv1", "visual.bn1", 3, stride: 2, pad: 1)]);
        x = g.Node("Relu", [ConvBn(g, w, x, "visual.conv2", "visual.bn2", 3, stride: 1, pad: 1)]);
        x = g.Node("Relu", [ConvBn(g, w, x, "visual.conv3", "visual.bn3", 3, stride: 1, pad: 1)]);
        x = AvgPool(g, x, 2);
        for (int layer = 1; layer <= 4; layer++)
        {
            for (int block = 0; block < c.VisionLayers[layer - 1]; block++)
                x = Bottleneck(g, w, x, $"visual.layer{layer}.{block}", stride: layer > 1 && block == 0 ? 2 : 1);
        }
        string features = AttentionPool(g, w, x, width * 32, c.VisionHeads, c.EmbedDim);
        g.FeatureOutputs(features, TowerGraphs.ImageFeatures, TowerGraphs.UnnormImageFeatures, c.EmbedDim);
    }

    static string Bottleneck(GraphBuilder g, StateDict w, string x, string p, int stride)
    {
        string y = g.Node("Relu", [ConvBn(g, w, x, p + ".conv1", p + ".bn1", 1, 1, 0)]);
        y = g.Node("Relu", [ConvBn(g, w, y, p + ".conv2", p + ".bn2", 3, 1, 1)]);
        if (stride > 1) y = AvgPool(g, y, stride);
        y = ConvBn(g, w, y, p + ".conv3", p + ".bn3", 1, 1, 0);
        string identity = x;
        if (w.Contains(p + ".downsample.0.weight"))
            identity = ConvBn(g, w, stride > 1 ? AvgPool(g, x, stride) : x, p + ".downsample.0", p + ".downsample.1", 1, 1, 0);
        return g.Node("Relu", [g.Node("Add", [y, identity])]);
    }

    static string AvgPool(GraphBuilder g, string x, int size) =>
        g.Node("AveragePool", [x], [Attr("kernel_shape", size, size), Attr("strides", size, size)]);

    static string ConvBn(GraphBuilder g, StateDict w, string x, string conv, string bn, int kernel, int stride, int pad)
    {
        var weight = w[conv + ".weight"];
        long outChannels = weight.shape[0];
        Tensor Scale() => w[bn + ".weight"].to(ScalarType.Float64) / w[bn + ".running_var"].to(ScalarType.Float64).add(HeldBatchNormEps, Sum.One).sqrt();
        string folded = g.Weight(conv + ".weight.bn_folded", weight.shape, () => weight.to(ScalarType.Float64) * Scale().view(-1, 1, 1, 1));
        string bias = g.Weight(bn + ".bias.folded", [outChannels],
            () => w[bn + ".bias"].to(ScalarType.Float64) - w[bn + ".running_mean"].to(ScalarType.Float64) * Scale());
        return g.Node("Conv", [x, folded, bias],
            [Attr("kernel_shape", kernel, kernel), Attr("strides", stride, stride), Attr("pads", pad, pad, pad, pad)]);
    }

    // AttentionPool2d: the mean token attends over [mean, spatial tokens] with positions; q/k/v are separate Linear maps.
    static string AttentionPool(GraphBuilder g, StateDict w, string x, int channels, int heads, int embedDim)
    {
        const string p = "visual.attnpool";
        string tokens = g.Node("Transpose", [g.Node("Reshape", [x, g.Int64s([0, channels, -1])])], [Attr("perm", 0L, 2, 1)]);
        string mean = g.ReduceMean(tokens, axis: 1);
        var positions = w[p + ".positional_embedding"];
        tokens = g.Node("Add", [g.Node("Concat", [mean, tokens], [Attr("axis", 1L)]),
            g.Weight(p + ".positional_embedding", positions.shape, () => positions)]);
        string first = g.Node("Slice", [tokens, g.Int64s([0]), g.Int64s([1]), g.Int64s([1])]);
        double scale = 1.0 / Math.Sqrt(channels / heads);
        Tensor Scaled(string name)
        {
            using Scalar factor = scale;
            return w[name] * factor;
        }
        string q = g.MatMulAdd(first, p + ".q_proj.weight.scaled.T", [channels, channels],
            () => Scaled(p + ".q_proj.weight").t(), () => Scaled(p + ".q_proj.bias"));
        string kv = g.MatMulAdd(tokens, p + ".kv_proj.weight.T", [channels, 2 * channels],
            () => cat([w[p + ".k_proj.weight"], w[p + ".v_proj.weight"]]).t(), () => cat([w[p + ".k_proj.bias"], w[p + ".v_proj.bias"]]));
        string[] split = g.SplitLast(kv, channels, 2);
        string attended = g.Select(g.Attention(q, split[0], split[1], heads, channels), 1, 0);
        return g.Linear(attended, p + ".c_proj", w[p + ".c_proj.weight"], w[p + ".c_proj.bias"]);
    }
}
