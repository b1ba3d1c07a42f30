// Small building blocks shared by the towers.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Model.Towers;

/// <summary>LayerNorm computed in float32 whatever the input dtype (the official LayerNorm subclass), cast back. For
/// bf16 input and weights libtorch's own kernel already does that (float statistics and arithmetic, one rounding of
/// the result to bf16), so the explicit casts, four extra passes over the activations in each direction, are skipped.</summary>
public sealed class Fp32LayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long[] shape;
    private readonly double eps;

    public Fp32LayerNorm(long size, double eps) : base(nameof(Fp32LayerNorm))
    {
        weight = nn.Parameter(ones(size));
        bias = nn.Parameter(zeros(size));
        shape = [size];
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dtype == weight.dtype && x.dtype is ScalarType.Float32 or ScalarType.BFloat16)
            return nn.functional.layer_norm(x, shape, weight, bias, eps);
        using var scope = NewDisposeScope();
        return nn.functional.layer_norm(x.to(ScalarType.Float32), shape, weight.to(ScalarType.Float32), bias.to(ScalarType.Float32), eps)
            .to(x.dtype).MoveToOuterDisposeScope();
    }
}

/// <summary>x * sigmoid(1.702 x), the activation of OpenAI CLIP's ViT MLP.</summary>
public static class QuickGelu
{
    public static Tensor Apply(Tensor x)
    {
        using var scope = NewDisposeScope();
        return x.mul(x.mul(1.702).sigmoid_()).MoveToOuterDisposeScope();
    }
}
