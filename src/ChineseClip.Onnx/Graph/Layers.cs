// The layers the towers share, as ONNX subgraphs: linear maps, LayerNorm (float32, as the official LayerNorm),
// multi-head attention, the two GELUs and L2 normalisation. Each picks the operators of the builder's opset.
using TorchSharp;
using static TorchSharp.torch;
using static ChineseClip.Onnx.Graph.GraphBuilder;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Graph;

internal static class Layers
{
    /// <summary>The lowest opset the exporter writes (14-16 get LayerNorm decomposed) and the highest it was tested at.</summary>
    public const int MinOpset = 14, MaxOpset = 21, DefaultOpset = 17;

    /// <summary>x @ W^T + b for a torch Linear weight [out, in] stored as [in, out].</summary>
    public static string Linear(this GraphBuilder g, string x, string name, Tensor weight, Tensor? bias)
    {
        long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
        string w = g.Weight(name + ".weight.T", [inFeatures, outFeatures], () => weight.t());
        string y = g.Node("MatMul", [x, w]);
        return bias is null ? y : g.Node("Add", [y, g.Weight(name + ".bias", [outFeatures], () => bias)]);
    }

    /// <summary>x @ W + b with a weight already laid out [in, out] (produced at write time) and an optional bias.</summary>
    public static string MatMulAdd(this GraphBuilder g, string x, string name, long[] shape, Func<Tensor> weight, Func<Tensor>? bias)
    {
        string y = g.Node("MatMul", [x, g.Weight(name, shape, weight)]);
        return bias is null ? y : g.Node("Add", [y, g.Weight(name + ".bias", [shape[1]], bias)]);
    }

    /// <summary>LayerNorm over the last axis, computed in float32 whatever the tower's precision (the official LayerNorm
    /// casts to float32 too; in fp16 the 1e-12 epsilon and the squares would not survive).</summary>
    public static string LayerNorm(this GraphBuilder g, string x, string name, Tensor weight, Tensor bias, double eps)
    {
        long size = weight.shape[0];
        string scale = g.Fp32Weight(name + ".weight", [size], () => weight);
        string shift = g.Fp32Weight(name + ".bias", [size], () => bias);
        bool fp16 = g.Precision == OnnxPrecision.Fp16;
        if (fp16) x = g.Cast(x, DataType.Float);
        string y;
        if (g.Opset >= 17)
        {
            y = g.Node("LayerNormalization", [x, scale, shift], [Attr("axis", -1L), Attr("epsilon", (float)eps)]);
        }
        else
        {
            // LayerNormalization is an opset-17 operator; before that, its definition spelled out.
            string mean = g.ReduceMean(x);
            string centred = g.Node("Sub", [x, mean]);
            string variance = g.ReduceMean(g.Node("Mul", [centred, centred]));
            string std = g.Node("Sqrt", [g.Node("Add", [variance, g.Fp32Constant((float)eps)])]);
            y = g.Node("Add", [g.Node("Mul", [g.Node("Div", [centred, std]), scale]), shift]);
        }
        return fp16 ? g.Cast(y, DataType.Float16) : y;
    }

    static string Fp32Constant(this GraphBuilder g, float value) =>
        g.Precision == OnnxPrecision.Fp32 ? g.Float(value) : g.Node("Cast", [g.Float(value)], [Attr("to", (long)DataType.Float)]);

    public static string Cast(this GraphBuilder g, string x, DataType to) => g.Node("Cast", [x], [Attr("to", (long)to)]);

    /// <summary>Mean over the last axis, kept (axes became an input in opset 18).</summary>
    public static string ReduceMean(this GraphBuilder g, string x, long axis = -1) => g.Opset >= 18
        ? g.Node("ReduceMean", [x, g.Int64s([axis])], [Attr("keepdims", 1L)])
        : g.Node("ReduceMean", [x], [Attr("axes", [axis]), Attr("keepdims", 1L)]);

    /// <summary>x / ||x||, over the last axis (the official x / x.norm(dim=-1, keepdim=True)).</summary>
    public static string L2Normalize(this GraphBuilder g, string x)
    {
        string norm = g.Opset >= 18
            ? g.Node("ReduceL2", [x, g.Int64s([-1])], [Attr("keepdims", 1L)])
            : g.Node("ReduceL2", [x], [Attr("axes", [-1L]), Attr("keepdims", 1L)]);
        return g.Node("Div", [x, norm]);
    }

    /// <summary>x * sigmoid(1.702 x): QuickGELU of the ViT MLP.</summary>
    public static string QuickGelu(this GraphBuilder g, string x) =>
        g.Node("Mul", [x, g.Node("Sigmoid", [g.Node("Mul", [x, g.Float(1.702f)])])]);

    /// <summary>0.5 x (1 + erf(x / sqrt 2)): BERT's GELU, in the form ONNX Runtime fuses into one kernel.</summary>
    public static string Gelu(this GraphBuilder g, string x)
    {
        string erf = g.Node("Erf", [g.Node("Div", [x, g.Float(MathF.Sqrt(2f))])]);
        return g.Node("Mul", [g.Node("Mul", [x, g.Node("Add", [erf, g.Float(1f)])]), g.Float(0.5f)]);
    }

    /// <summary>Multi-head attention of projected q [N, Lq, W] over k, v [N, L, W] (the 1/sqrt(d) scale is expected to be
    /// folded into q's projection already); <paramref name="mask"/> is added to the scores ([N, 1, 1, L]).
    /// Returns [N, Lq, W] before the output projection.</summary>
    public static string Attention(this GraphBuilder g, string q, string k, string v, int heads, long width, string? mask = null)
    {
        long d = width / heads;
        string headShape = g.Int64s([0, 0, heads, d]);
        string Heads(string x, params long[] perm) => g.Node("Transpose", [g.Node("Reshape", [x, headShape])], [Attr("perm", perm)]);
        string scores = g.Node("MatMul", [Heads(q, 0, 2, 1, 3), Heads(k, 0, 2, 3, 1)]);  // [N, H, Lq, L]
        if (mask is not null) scores = g.Node("Add", [scores, mask]);
        string probabilities = g.Node("Softmax", [scores], [Attr("axis", -1L)]);
        string context = g.Node("MatMul", [probabilities, Heads(v, 0, 2, 1, 3)]);         // [N, H, Lq, d]
        context = g.Node("Transpose", [context], [Attr("perm", 0L, 2, 1, 3)]);
        return g.Node("Reshape", [context, g.Int64s([0, 0, width])]);
    }

    /// <summary>Splits [.., n * width] along the last axis into n tensors of width each.</summary>
    public static string[] SplitLast(this GraphBuilder g, string x, long width, int n) =>
        g.NodeN("Split", [x, g.Int64s(Enumerable.Repeat(width, n).ToArray())], n, [Attr("axis", -1L)]);

    /// <summary>Row <paramref name="index"/> along <paramref name="axis"/>, the axis removed.</summary>
    public static string Select(this GraphBuilder g, string x, long axis, long index) =>
        g.Node("Gather", [x, g.Int64s([index], scalar: true)], [Attr("axis", axis)]);

    /// <summary>Scales the query third of a packed [3W, W] projection (and its bias) by 1/sqrt(head width), so that the
    /// attention needs no separate scaling of its scores.</summary>
    public static Tensor ScaleQuery(Tensor packed, long width, int heads)
    {
        var scale = ones_like(packed);
        using (Scalar factor = 1.0 / Math.Sqrt(width / heads)) scale.narrow(0, 0, width).mul_(factor);
        return packed.mul(scale);
    }

    /// <summary>The image and text features: the tower's output in float32, and its L2-normalised copy.</summary>
    public static void FeatureOutputs(this GraphBuilder g, string features, string normalisedName, string unnormalisedName, long embedDim)
    {
        if (g.Precision == OnnxPrecision.Fp16) features = g.Cast(features, DataType.Float);
        string unnormalised = g.Node("Identity", [features], output: unnormalisedName);
        g.Output(g.L2Normalize(unnormalised), normalisedName, DataType.Float, "batch", embedDim);
        g.DeclareOutput(unnormalised, DataType.Float, "batch", embedDim);
    }
}
