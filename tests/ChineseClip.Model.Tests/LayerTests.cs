using ChineseClip.Model.Towers;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model.Tests;

public class LayerTests
{
    // bf16 input and weights take libtorch's LayerNorm directly; it must give what the explicit float32 round trip
    // (the official LayerNorm subclass) gives: float statistics and arithmetic, one rounding to bf16.
    [Fact]
    public void Bf16_layer_norm_matches_the_float32_round_trip()
    {
        torch.manual_seed(5);
        using var norm = new Fp32LayerNorm(768, 1e-5);
        using (no_grad())
        {
            using Scalar half = 0.5;
            foreach (var (_, p) in norm.named_parameters()) p.copy_((randn(768) * half).add(Sum.One, Sum.One));
        }
        using Scalar three = 3, offset = 0.7;
        using var x32 = (randn(4, 197, 768) * three).add(offset, Sum.One);
        using var x = x32.to(ScalarType.BFloat16);
        using var expected = nn.functional.layer_norm(x.to(ScalarType.Float32), [768],
            norm.named_parameters().First(p => p.name == "weight").parameter.to(ScalarType.BFloat16).to(ScalarType.Float32),
            norm.named_parameters().First(p => p.name == "bias").parameter.to(ScalarType.BFloat16).to(ScalarType.Float32), 1e-5).to(ScalarType.BFloat16);
        norm.to(ScalarType.BFloat16);
        using var actual = norm.forward(x);
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        using var diff = (actual.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs();
        using Scalar floor = 1e-3, zero = 0;
        using var scale = expected.to(ScalarType.Float32).abs().add(floor, Sum.One);
        // One bf16 ulp is 2^-8 relative: allow one, on any element; almost all must be identical.
        Assert.True((diff / scale).max().item<float>() <= 1.0f / 128, $"max relative difference {(diff / scale).max().item<float>()}");
        Assert.True(diff.eq(zero).to(ScalarType.Float32).mean().item<float>() > 0.99f);
    }

    static readonly Scalar Tiny = 1e-30;

    static double Relative(Tensor a, Tensor b) => ((a - b).norm() / b.norm().add(Tiny, Sum.One)).item<float>();

    // A contiguous 3-D input runs as exactly one addmm over its 2-D view (bias in the product); the other path is
    // TorchSharp's F.linear: the matmul, then the bias added.
    [Fact]
    public void A_folded_linear_is_one_addmm_over_the_2d_view_and_the_plain_one_is_matmul_then_bias()
    {
        torch.manual_seed(3);
        using var x = randn(4, 7, 32);
        using var weight = randn(48, 32);
        using var bias = randn(48);
        using var folded = Dense.Linear(x, weight, bias, foldInputs: true);
        using var plain = Dense.Linear(x, weight, bias, foldInputs: false);
        Assert.Equal([4L, 7, 48], folded.shape);
        using var addmm = torch.addmm(bias, x.view(28, 32), weight.t(), beta: 1, alpha: 1).view(4, 7, 48);
        Assert.True(folded.allclose(addmm, rtol: 0, atol: 0), "the folded path is not addmm over the 2-D view");
        using var reference = F.linear(x, weight, bias);
        Assert.True(plain.allclose(reference, rtol: 0, atol: 0), "the plain path is not F.linear");
        Assert.True(Relative(folded, plain) < 1e-6, $"the two paths differ by {Relative(folded, plain):E2}");
    }

    [Fact]
    public void A_non_contiguous_input_or_a_2d_one_takes_f_linear_as_it_is()
    {
        torch.manual_seed(4);
        using var weight = randn(24, 16);
        using var bias = randn(24);
        using var transposed = randn(5, 16, 9).transpose(1, 2); // [5, 9, 16], not contiguous
        Assert.False(transposed.is_contiguous());
        using var expected = F.linear(transposed, weight, bias);
        using var actual = Dense.Linear(transposed, weight, bias, foldInputs: true);
        Assert.True(actual.allclose(expected, rtol: 0, atol: 0));
        using var flat = randn(6, 16);
        using var flatActual = Dense.Linear(flat, weight, bias, foldInputs: true);
        using var flatExpected = F.linear(flat, weight, bias);
        Assert.True(flatActual.allclose(flatExpected, rtol: 0, atol: 0));
    }

    static ClipConfig TinyVit() => Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json"));

    // Outputs and the gradient of every parameter (and of the input) for a random weighting of the outputs.
    static (Tensor[] Outputs, Dictionary<string, Tensor> Grads) Pass(nn.Module module, Tensor input, Func<Tensor, Tensor[]> forward, Tensor[] weightings)
    {
        module.zero_grad();
        using var scope = NewDisposeScope();
        Tensor x = input.detach().requires_grad_(true);
        Tensor[] outputs = forward(x);
        outputs.Zip(weightings, (o, w) => (o * w).sum()).Aggregate(Sum.Of).backward();
        var grads = module.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone().MoveToOuterDisposeScope());
        if (x.grad is not null) grads["(input)"] = x.grad.clone().MoveToOuterDisposeScope();
        return (outputs.Select(o => o.detach().MoveToOuterDisposeScope()).ToArray(), grads);
    }

    static void AssertSameFunction((Tensor[] Outputs, Dictionary<string, Tensor> Grads) expected, (Tensor[] Outputs, Dictionary<string, Tensor> Grads) actual)
    {
        for (int i = 0; i < expected.Outputs.Length; i++)
            Assert.True(Relative(actual.Outputs[i], expected.Outputs[i]) < 1e-5, $"output {i} differs by {Relative(actual.Outputs[i], expected.Outputs[i]):E2}");
        Assert.Equal(expected.Grads.Keys.Order(), actual.Grads.Keys.Order());
        // Some gradients are zero in theory (a key bias: softmax ignores a per-row constant), so their computed values
        // are rounding noise: differences are measured against the size of all gradients too.
        double all = Math.Sqrt(expected.Grads.Values.Sum(g => Math.Pow(g.norm().item<float>(), 2)));
        foreach (var (name, g) in expected.Grads)
        {
            double difference = (actual.Grads[name] - g).norm().item<float>();
            Assert.True(difference <= 1e-4 * g.norm().item<float>() + 1e-6 * all, $"{name}: gradients differ by {difference:E2} (norm {g.norm().item<float>():E2})");
        }
    }

    [Fact]
    public void Folding_the_linear_inputs_keeps_both_towers_features_and_gradients_within_fp32_rounding()
    {
        var config = TinyVit();
        torch.manual_seed(21);
        using var model = new ClipModel(config);
        model.eval(); // no dropout: both passes compute the same function
        var keys = model.state_dict().Select(kv => (kv.Key, string.Join("x", kv.Value.shape))).ToList();
        using var pixels = randn(3, 3, config.ImageResolution, config.ImageResolution);
        using var ids = tensor(new long[] { 101, 2769, 872, 1962, 102, 0, 101, 679, 102, 0, 0, 0, 101, 2769, 2769, 872, 1962, 102 }, [3, 6]);
        Tensor[] weightings = [randn(3, config.EmbedDim), randn(3, config.EmbedDim)];
        Tensor[] Forward(Tensor x) => [model.EncodeImage(x), model.EncodeText(ids)];
        Assert.True(model.Kernels.FoldLinearInputs, "folding is not the default");
        var folded = Pass(model, pixels, Forward, weightings);
        model.Kernels = model.Kernels with { FoldLinearInputs = false };
        var choosers = model.modules().OfType<IKernelChoices>().ToList();
        Assert.Equal(1 + 2 * config.VisionLayers[0] + 4 * config.TextNumHiddenLayers, choosers.Count); // the ViT; attention and MLP per block; self-attention, two outputs and the intermediate per layer
        Assert.All(choosers, m => Assert.False(m.Kernels.FoldLinearInputs));
        var plain = Pass(model, pixels, Forward, weightings);
        AssertSameFunction(plain, folded);
        // The official keys and shapes stay.
        Assert.Equal(keys, model.state_dict().Select(kv => (kv.Key, string.Join("x", kv.Value.shape))).ToList());
    }

    // The ResNet tower's attention pool (Linear layers on [N, HW + 1, C]); alone, since the tiny ResNet stem's CPU
    // backward now and then returns NaN gradients on either path (libtorch's convolution, not the pool).
    [Fact]
    public void Folding_the_linear_inputs_keeps_the_attention_pool_within_fp32_rounding()
    {
        torch.manual_seed(22);
        using var pool = new AttentionPool2d(spacialDim: 3, embedDim: 64, heads: 4, outputDim: 32);
        using var x = randn(5, 64, 3, 3);
        Tensor[] weightings = [randn(5, 32)];
        Tensor[] Forward(Tensor input) => [pool.forward(input)];
        var folded = Pass(pool, x, Forward, weightings);
        pool.Kernels = pool.Kernels with { FoldLinearInputs = false };
        var plain = Pass(pool, x, Forward, weightings);
        AssertSameFunction(plain, folded);
    }

    [Fact]
    public void Unbinding_packed_qkv_gives_the_selects_views_and_the_same_gradients_bit_for_bit()
    {
        torch.manual_seed(23);
        using var packed = randn(3, 5, 3 * 32);
        Tensor[] weightings = [randn(3, 4, 5, 8), randn(3, 4, 5, 8), randn(3, 4, 5, 8)];
        var results = new[] { true, false }.Select(unbind =>
        {
            using var scope = NewDisposeScope();
            Tensor x = packed.detach().requires_grad_(true);
            var (q, k, v) = PackedQkv.Split(x, heads: 4, KernelChoices.Default with { UnbindPackedQkv = unbind });
            Tensor[] parts = [q, k, v];
            Assert.All(parts, p => Assert.Equal([3L, 4, 5, 8], p.shape));
            parts.Zip(weightings, (p, w) => (p * w).sum()).Aggregate(Sum.Of).backward();
            return (Strides: parts.Select(p => p.stride()).ToArray(), Values: parts.Select(p => p.detach().clone().MoveToOuterDisposeScope()).ToArray(),
                Grad: x.grad!.clone().MoveToOuterDisposeScope());
        }).ToList();
        var (unbound, selected) = (results[0], results[1]);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(selected.Strides[i], unbound.Strides[i]);
            Assert.True(unbound.Values[i].allclose(selected.Values[i], rtol: 0, atol: 0));
        }
        Assert.True(unbound.Grad.allclose(selected.Grad, rtol: 0, atol: 0), "the gradients of the packed product differ");
        Assert.True(unbound.Grad.abs().min().item<float>() > 0, "some part of the packed product got no gradient");
    }

    [Fact]
    public void Unbinding_packed_qkv_keeps_both_towers_features_and_gradients_bit_for_bit()
    {
        var config = TinyVit();
        torch.manual_seed(24);
        using var model = new ClipModel(config);
        model.eval();
        model.Bert.FusedQkv = true; // the text tower's packed path too
        using var pixels = randn(2, 3, config.ImageResolution, config.ImageResolution);
        using var ids = tensor(new long[] { 101, 2769, 872, 1962, 102, 0, 101, 679, 102, 0, 0, 0 }, [2, 6]);
        Tensor[] weightings = [randn(2, config.EmbedDim), randn(2, config.EmbedDim)];
        Tensor[] Forward(Tensor x) => [model.EncodeImage(x), model.EncodeText(ids)];
        Assert.True(model.Kernels.UnbindPackedQkv, "unbinding is not the default");
        var unbound = Pass(model, pixels, Forward, weightings);
        model.Kernels = model.Kernels with { UnbindPackedQkv = false };
        var selected = Pass(model, pixels, Forward, weightings);
        for (int i = 0; i < 2; i++) Assert.True(unbound.Outputs[i].allclose(selected.Outputs[i], rtol: 0, atol: 0), $"output {i} differs");
        foreach (var (name, g) in selected.Grads)
            Assert.True(unbound.Grads[name].allclose(g, rtol: 0, atol: 0), $"{name}: the gradients differ");
    }

    // QuickGELU as one SiLU with the 1.702 moved into the weights: the same function up to rounding. In fp32 the
    // outputs and gradients agree to rounding; in bf16 its error against an fp32 computation with the same bf16
    // weights is of the size of QuickGELU's own.
    [Fact]
    public void Quick_gelu_as_silu_is_within_rounding_of_quick_gelu_in_fp32_and_bf16()
    {
        torch.manual_seed(25);
        using var mlp = new VisionMlp(64);
        using Scalar two = 2;
        using var x = randn(4, 9, 64) * two;
        Tensor[] weightings = [randn(4, 9, 64)];
        Tensor[] Forward(Tensor input) => [mlp.forward(input)];
        var gelu = Pass(mlp, x, Forward, weightings);
        mlp.Kernels = mlp.Kernels with { QuickGeluAsSilu = true };
        var silu = Pass(mlp, x, Forward, weightings);
        AssertSameFunction(gelu, silu);

        double Error(bool asSilu)
        {
            using var scope = NewDisposeScope();
            using var half = new VisionMlp(64);
            half.load_state_dict(mlp.state_dict());
            half.to(ScalarType.BFloat16);
            Tensor xh = x.to(ScalarType.BFloat16);
            // fp32 arithmetic on the bf16 values: the truth both bf16 paths round away from.
            half.to(ScalarType.Float32);
            Tensor truth = half.forward(xh.to(ScalarType.Float32));
            half.to(ScalarType.BFloat16);
            half.Kernels = half.Kernels with { QuickGeluAsSilu = asSilu };
            Tensor actual = half.forward(xh).to(ScalarType.Float32);
            return Relative(actual, truth);
        }
        double geluError = Error(false), siluError = Error(true);
        Assert.True(siluError < 1e-2 && siluError <= 2 * geluError, $"bf16 relative error: silu {siluError:E2}, QuickGELU {geluError:E2}");
    }

    [Fact]
    public void The_patch_embedding_as_a_matrix_product_is_the_convolution_within_fp32_rounding()
    {
        var config = TinyVit();
        torch.manual_seed(26);
        using var model = new ClipModel(config);
        model.eval();
        using var pixels = randn(3, 3, config.ImageResolution, config.ImageResolution);
        Tensor[] weightings = [randn(3, config.EmbedDim)];
        Tensor[] Forward(Tensor x) => [model.EncodeImage(x)];
        var convolution = Pass(model, pixels, Forward, weightings);
        model.Kernels = model.Kernels with { PatchEmbeddingAsMatmul = true };
        var product = Pass(model, pixels, Forward, weightings);
        AssertSameFunction(convolution, product);
        Assert.True(Relative(product.Grads["visual.conv1.weight"], convolution.Grads["visual.conv1.weight"]) < 1e-5);
        // The pixels' gradient (the convolution's input gradient) goes through the product too.
        Assert.True(Relative(product.Grads["(input)"], convolution.Grads["(input)"]) < 1e-5);
    }
}
