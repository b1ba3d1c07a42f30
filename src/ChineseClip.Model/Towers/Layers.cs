// Small building blocks shared by the towers.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model.Towers;

/// <summary>How the towers lay out their work in kernels. Each choice computes the same function; the defaults are
/// the fastest measured or predicted on a GPU, and the other paths stay so that `cnclip bench gpu --variants` can time
/// them against each other in one process (bench/gpu/RESULTS.md).</summary>
public sealed record KernelChoices
{
    public static KernelChoices Default { get; } = new();

    /// <summary>Every Linear on a contiguous input of more than two dimensions runs on its 2-D view [N*L, C]: one
    /// addmm with the bias added in the matrix product's epilogue, as PyTorch's at::linear (and so the official
    /// Python model) computes it. False: TorchSharp's F.linear as it is, which calls the C++ frontend's
    /// torch::nn::functional::linear: a matmul, then the bias added in place over the whole output (on a GPU a
    /// broadcasting, non-vectorized kernel: 12 x 466 us per ViT-B/16 forward at batch 128 on an H200).</summary>
    public bool FoldLinearInputs { get; init; } = true;
}

/// <summary>A module of the towers that reads <see cref="KernelChoices"/> (set for a whole model with
/// <see cref="ClipModel.Kernels"/>).</summary>
public interface IKernelChoices
{
    KernelChoices Kernels { get; set; }
}

/// <summary>The towers' Linear layers.</summary>
public static class Dense
{
    /// <summary>x @ weight^T + bias over the last dimension of <paramref name="x"/>; with
    /// <paramref name="foldInputs"/>, a contiguous input of rank 3 or more runs as one 2-D product (see
    /// <see cref="KernelChoices.FoldLinearInputs"/>).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, bool foldInputs)
    {
        if (!foldInputs || x.dim() <= 2 || !x.is_contiguous()) return F.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        long[] shape = x.shape;
        shape[^1] = weight.shape[0];
        return F.linear(x.view(-1, x.shape[^1]), weight, bias).view(shape).MoveToOuterDisposeScope();
    }

    public static Tensor Linear(Linear layer, Tensor x, KernelChoices kernels) => Linear(x, layer.weight!, layer.bias, kernels.FoldLinearInputs);
}

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
