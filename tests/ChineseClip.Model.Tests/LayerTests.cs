using ChineseClip.Model.Towers;
using TorchSharp;
using static TorchSharp.torch;

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
            foreach (var (_, p) in norm.named_parameters()) p.copy_(randn(768) * 0.5 + 1);
        }
        using var x32 = randn(4, 197, 768) * 3 + 0.7;
        using var x = x32.to(ScalarType.BFloat16);
        using var expected = nn.functional.layer_norm(x.to(ScalarType.Float32), [768],
            norm.named_parameters().First(p => p.name == "weight").parameter.to(ScalarType.BFloat16).to(ScalarType.Float32),
            norm.named_parameters().First(p => p.name == "bias").parameter.to(ScalarType.BFloat16).to(ScalarType.Float32), 1e-5).to(ScalarType.BFloat16);
        norm.to(ScalarType.BFloat16);
        using var actual = norm.forward(x);
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        using var diff = (actual.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs();
        using var scale = expected.to(ScalarType.Float32).abs() + 1e-3;
        // One bf16 ulp is 2^-8 relative: allow one, on any element; almost all must be identical.
        Assert.True((diff / scale).max().item<float>() <= 1.0f / 128, $"max relative difference {(diff / scale).max().item<float>()}");
        Assert.True(diff.eq(0).to(ScalarType.Float32).mean().item<float>() > 0.99f);
    }
}
