using ChineseClip.Model.Towers;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Tests.Towers;

/// <summary>The text tower's speed switches compute the same function: fused QKV (one matrix product over the
/// concatenated weights) and skipping the attention mask of a batch without [PAD].</summary>
public class BertTests
{
    static ClipConfig Tiny() => Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json"));

    // Fresh random ids in the word-piece range; padded rows end in zeros after [SEP].
    static Tensor Ids(int seed, bool padded)
    {
        var random = new Random(seed);
        const int batch = 5, length = 12;
        var ids = new long[batch * length];
        for (int b = 0; b < batch; b++)
        {
            int words = padded ? random.Next(1, length - 2) : length - 2;
            ids[b * length] = 101;
            for (int t = 1; t <= words; t++) ids[b * length + t] = random.Next(672, 21128);
            ids[b * length + words + 1] = 102;
        }
        return tensor(ids, [batch, length]);
    }

    // The [CLS] output and the gradient of every parameter for a random weighting of all hidden states.
    static (Tensor Output, Dictionary<string, Tensor> Grads) Run(BertModel bert, Tensor ids, Tensor weighting)
    {
        bert.zero_grad();
        using var scope = NewDisposeScope();
        Tensor hidden = bert.forward(ids);
        (hidden * weighting).sum().backward();
        var grads = bert.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone().MoveToOuterDisposeScope());
        return (hidden.detach().MoveToOuterDisposeScope(), grads);
    }

    static readonly Scalar Epsilon = 1e-30;

    static double Relative(Tensor a, Tensor b) => ((a - b).norm() / b.norm().add(Epsilon, Sum.One)).item<float>();

    [Fact]
    public void Fused_qkv_gives_the_separate_projections_outputs_and_gradients_within_fp32_rounding()
    {
        torch.manual_seed(11);
        using var bert = new BertModel(Tiny());
        bert.eval(); // no dropout: both runs compute the same function
        var keys = bert.state_dict().Select(kv => (kv.Key, string.Join("x", kv.Value.shape))).ToList();
        for (int seed = 1; seed <= 3; seed++)
        {
            using var ids = Ids(seed, padded: true);
            using var weighting = randn(ids.shape[0], ids.shape[1], 128);
            bert.FusedQkv = false;
            var (separate, separateGrads) = Run(bert, ids, weighting);
            bert.FusedQkv = true;
            var (fused, fusedGrads) = Run(bert, ids, weighting);
            Assert.True(Relative(fused, separate) < 1e-5, $"outputs differ by {Relative(fused, separate):E2}");
            // key.bias has an exactly zero gradient in theory (softmax ignores a per-row constant), so its computed
            // values are rounding noise: the differences are measured against the size of all gradients too.
            double all = Math.Sqrt(separateGrads.Values.Sum(g => Math.Pow(g.norm().item<float>(), 2)));
            foreach (var (name, g) in separateGrads)
            {
                double difference = (fusedGrads[name] - g).norm().item<float>();
                Assert.True(difference <= 1e-4 * g.norm().item<float>() + 1e-6 * all, $"{name}: gradients differ by {difference:E2} (norm {g.norm().item<float>():E2})");
            }
        }
        // The official keys and shapes stay: query, key and value are still three Linear layers.
        Assert.Equal(keys, bert.state_dict().Select(kv => (kv.Key, string.Join("x", kv.Value.shape))).ToList());
        Assert.Contains(keys, k => k.Key == "encoder.layer.0.attention.self.query.weight");
    }

    [Fact]
    public void Skipping_the_mask_of_an_unpadded_batch_changes_nothing()
    {
        torch.manual_seed(12);
        using var bert = new BertModel(Tiny());
        bert.eval();
        for (int seed = 1; seed <= 3; seed++)
        {
            using var ids = Ids(seed, padded: false);
            Assert.False(BertModel.HasPadding(ids));
            using var weighting = randn(ids.shape[0], ids.shape[1], 128);
            bert.SkipMaskWhenUnpadded = false;
            var (masked, maskedGrads) = Run(bert, ids, weighting);
            bert.SkipMaskWhenUnpadded = true;
            var (unmasked, unmaskedGrads) = Run(bert, ids, weighting);
            Assert.True(Relative(unmasked, masked) < 1e-6, $"outputs differ by {Relative(unmasked, masked):E2}");
            foreach (var (name, g) in maskedGrads)
                Assert.True(Relative(unmaskedGrads[name], g) < 1e-5, $"{name}: gradients differ by {Relative(unmaskedGrads[name], g):E2}");
        }
    }

    [Fact]
    public void A_padded_batch_keeps_its_mask_when_skipping_is_on()
    {
        torch.manual_seed(13);
        using var bert = new BertModel(Tiny());
        bert.eval();
        using var ids = Ids(4, padded: true);
        Assert.True(BertModel.HasPadding(ids));
        using var weighting = randn(ids.shape[0], ids.shape[1], 128);
        var (masked, _) = Run(bert, ids, weighting);
        bert.SkipMaskWhenUnpadded = true;
        var (skipping, _) = Run(bert, ids, weighting);
        Assert.True(skipping.allclose(masked, rtol: 0, atol: 0), "the padded batch ran without its mask");
        // And the mask matters for this batch: without it, [CLS] attends to the padding.
        using (no_grad())
        {
            using var unmasked = bert.Encode(ids, padded: false);
            Assert.True(Relative(unmasked.select(1, 0), masked.select(1, 0)) > 1e-3);
        }
    }
}
