// Small building blocks shared by the towers.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model.Towers;

/// <summary>The towers' sums of two tensors. TorchSharp's <c>a + b</c> makes a <see cref="Scalar"/> alpha for each call
/// and leaves it to the finalizer; a GC on another thread while libtorch runs the add can free it under libtorch's
/// feet (a clean-clone CI run failed once with "Expected false to be true" in c10::Scalar::toFloat, from
/// VisionTransformer.forward; upstream: dotnet/TorchSharp pull request 1496, open in 0.107). These pass one alpha that
/// lives as long as the process. Rule CNCLIP0001 (src/ChineseClip.Analyzers) finds such temporaries anywhere in our code.</summary>
public static class Sum
{
    /// <summary>1, held for the process's life: an alpha, or a number to add (<c>x.add(Sum.One, Sum.One)</c>).</summary>
    public static readonly Scalar One = 1;

    public static Tensor Of(Tensor a, Tensor b) => a.add(b, One);
}

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

    /// <summary>A packed query/key/value product [N, L, 3W] is split into its three heads-first views with one unbind,
    /// whose backward stacks the three gradients straight into the product's layout (one kernel). False: three
    /// selects of the permuted product, whose backward fills a zeroed [3, N, H, L, D] buffer per select, adds them up
    /// and copies the sum out of the permuted layout into the product's (8 kernels, ~0.6 ms per ViT-B/16 block at
    /// batch 128 on an H200). The forward views are the same (same strides) either way.</summary>
    public bool UnbindPackedQkv { get; init; } = true;

    /// <summary>The ViT MLP's QuickGELU as one SiLU: x * sigmoid(1.702 x) = silu(1.702 x) / 1.702, the 1.702 multiplied
    /// into c_fc's weight and bias and the 1 / 1.702 into c_proj's weight (passes over weight-sized tensors, ~2.4M
    /// elements each for ViT-B/16, instead of activation-sized ones: one kernel each way over [N, L, 4W] where
    /// QuickGELU takes three forward and five backward). The same function, rounded differently (in bf16 the scaled
    /// weights are rounded once more), so off by default: an opt-in measured by `bench gpu --variants ...+silu`.
    /// Scaling the weights rather than using addmm's alpha: alpha != 1 makes addmm's backward multiply the input's
    /// gradient by alpha, one more pass over an activation-sized tensor.</summary>
    public bool QuickGeluAsSilu { get; init; }

    /// <summary>The ViT patch embedding (conv1: kernel = stride = patch, no bias) as one matrix product over the image
    /// cut into patches, [N * g * g, 3 * p * p] @ [3 * p * p, W]. On the H200 profile the convolution took ~1.0 ms
    /// forward (cuDNN's layout transposes around a 693 us kernel) and ~0.6 ms backward at batch 128, where the
    /// product's 30 GFLOP need ~0.05 ms. The same function summed in another order: off by default until timed.</summary>
    public bool PatchEmbeddingAsMatmul { get; init; }
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

/// <summary>Multi-head attention's packed projections.</summary>
public static class PackedQkv
{
    /// <summary>[N, L, 3W] (query, key and value side by side, as torch.nn.MultiheadAttention packs them) as three
    /// [N, heads, L, W/heads] views for scaled_dot_product_attention (see <see cref="KernelChoices.UnbindPackedQkv"/>).</summary>
    public static (Tensor Q, Tensor K, Tensor V) Split(Tensor qkv, int heads, KernelChoices kernels)
    {
        using var scope = NewDisposeScope();
        long n = qkv.shape[0], l = qkv.shape[1], w = qkv.shape[2] / 3;
        Tensor packed = qkv.view(n, l, 3, heads, w / heads);
        Tensor q, k, v;
        if (kernels.UnbindPackedQkv)
        {
            Tensor[] parts = packed.unbind(2);
            (q, k, v) = (parts[0].transpose(1, 2), parts[1].transpose(1, 2), parts[2].transpose(1, 2));
        }
        else
        {
            Tensor permuted = packed.permute(2, 0, 3, 1, 4);
            (q, k, v) = (permuted[0], permuted[1], permuted[2]);
        }
        return (q.MoveToOuterDisposeScope(), k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }
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
    public const double Scale = 1.702;

    /// <summary><see cref="Scale"/> held for the process's life, for the products with it.</summary>
    public static readonly Scalar HeldScale = Scale;

    public static Tensor Apply(Tensor x)
    {
        using var scope = NewDisposeScope();
        return x.mul(x.mul(HeldScale).sigmoid_()).MoveToOuterDisposeScope();
    }
}
