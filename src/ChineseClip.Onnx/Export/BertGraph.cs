// The BERT text tower as an ONNX graph: BertModel.forward in eval mode (no dropout), the [CLS] state @ text_projection.
// The attention mask is computed inside the graph from [PAD] (id 0), as the official model does, so a caller passes
// token ids only and may pad a batch to any length.
using ChineseClip.Model;
using ChineseClip.Model.Towers;
using ChineseClip.Onnx.Graph;
using static ChineseClip.Onnx.Graph.GraphBuilder;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Export;

internal static class BertGraph
{
    const double Eps = 1e-12;

    public static void Build(GraphBuilder g, ClipConfig c, StateDict w)
    {
        int hidden = c.TextHiddenSize, heads = c.TextNumAttentionHeads;
        string ids = g.Input(TowerGraphs.TextInput, DataType.Int64, "batch", "length");

        // Additive mask [N, 1, 1, L]: -10000 where the token is [PAD].
        string pad = g.Node("Equal", [ids, g.Int64s([Model.Towers.BertModel.PadId], scalar: true)]);
        string mask = g.Node("Mul", [g.Cast(pad, g.Compute), g.Float(-10000f)]);
        mask = g.Node("Unsqueeze", [mask, g.Int64s([1, 2])]);

        // Embeddings: word + position (0..L-1) + token type 0, the last two summed once at export.
        string words = g.Node("Gather", [g.Weight("bert.embeddings.word_embeddings.weight", [c.VocabSize, hidden],
            () => w["bert.embeddings.word_embeddings.weight"]), ids], [Attr("axis", 0L)]);
        string length = g.Node("Slice", [g.Node("Shape", [ids]), g.Int64s([1]), g.Int64s([2])]);
        string table = g.Weight("bert.embeddings.position_embeddings.weight.typed", [c.TextMaxPositionEmbeddings, hidden],
            () => Sum.Of(w["bert.embeddings.position_embeddings.weight"], w["bert.embeddings.token_type_embeddings.weight"][0]));
        string positions = g.Node("Slice", [table, g.Int64s([0]), length, g.Int64s([0])]);
        string x = g.Node("Add", [words, positions]);
        x = g.LayerNorm(x, "bert.embeddings.LayerNorm", w["bert.embeddings.LayerNorm.weight"], w["bert.embeddings.LayerNorm.bias"], Eps);

        for (int i = 0; i < c.TextNumHiddenLayers; i++)
        {
            string p = $"bert.encoder.layer.{i}";
            string s = p + ".attention.self";
            // query, key and value in one product (the three Linear maps stacked as torch's packed attention does).
            string qkv = g.MatMulAdd(x, s + ".qkv.scaled.T", [hidden, 3 * hidden],
                () => Layers.ScaleQuery(cat([w[s + ".query.weight"], w[s + ".key.weight"], w[s + ".value.weight"]]), hidden, heads).t(),
                () => Layers.ScaleQuery(cat([w[s + ".query.bias"], w[s + ".key.bias"], w[s + ".value.bias"]]), hidden, heads));
            string[] split = g.SplitLast(qkv, hidden, 3);
            string h = g.Attention(split[0], split[1], split[2], heads, hidden, mask);
            h = g.Linear(h, p + ".attention.output.dense", w[p + ".attention.output.dense.weight"], w[p + ".attention.output.dense.bias"]);
            x = g.LayerNorm(g.Node("Add", [h, x]), p + ".attention.output.LayerNorm",
                w[p + ".attention.output.LayerNorm.weight"], w[p + ".attention.output.LayerNorm.bias"], Eps);
            h = g.Linear(x, p + ".intermediate.dense", w[p + ".intermediate.dense.weight"], w[p + ".intermediate.dense.bias"]);
            h = g.Linear(g.Gelu(h), p + ".output.dense", w[p + ".output.dense.weight"], w[p + ".output.dense.bias"]);
            x = g.LayerNorm(g.Node("Add", [h, x]), p + ".output.LayerNorm", w[p + ".output.LayerNorm.weight"], w[p + ".output.LayerNorm.bias"], Eps);
        }
        string features = g.MatMulAdd(g.Select(x, 1, 0), "text_projection", [hidden, c.EmbedDim], () => w["text_projection"], null);
        g.FeatureOutputs(features, TowerGraphs.TextFeatures, TowerGraphs.UnnormTextFeatures, c.EmbedDim);
    }
}
