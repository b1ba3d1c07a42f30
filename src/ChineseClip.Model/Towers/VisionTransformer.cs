// The ViT image tower, pre-LN as in OpenAI CLIP. Field names are the official state_dict keys under `visual.`.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model.Towers;

/// <summary>torch.nn.MultiheadAttention's parameters (packed q/k/v), computed with scaled-dot-product attention.</summary>
public sealed class PackedSelfAttention : nn.Module<Tensor, Tensor>, IKernelChoices
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int heads;

    public PackedSelfAttention(int width, int heads) : base(nameof(PackedSelfAttention))
    {
        this.heads = heads;
        in_proj_weight = nn.Parameter(empty(3 * width, width));
        in_proj_bias = nn.Parameter(zeros(3 * width));
        out_proj = nn.Linear(width, width);
        // torch's MultiheadAttention initialisation: xavier-uniform packed weights, zero biases.
        using (no_grad())
        {
            nn.init.xavier_uniform_(in_proj_weight);
            nn.init.zeros_(out_proj.bias!);
        }
        RegisterComponents();
    }

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    /// <param name="x">[N, L, W], batch first.</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], l = x.shape[1], w = x.shape[2];
        var (q, k, v) = PackedQkv.Split(Dense.Linear(x, in_proj_weight, in_proj_bias, Kernels.FoldLinearInputs), heads, Kernels);
        Tensor attended = F.scaled_dot_product_attention(q, k, v);
        return Dense.Linear(out_proj, attended.transpose(1, 2).reshape(n, l, w), Kernels).MoveToOuterDisposeScope();
    }
}

public sealed class VisionMlp : nn.Module<Tensor, Tensor>, IKernelChoices
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;

    public VisionMlp(int width) : base(nameof(VisionMlp))
    {
        c_fc = nn.Linear(width, width * 4);
        c_proj = nn.Linear(width * 4, width);
        RegisterComponents();
    }

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (!Kernels.QuickGeluAsSilu)
            return Dense.Linear(c_proj, QuickGelu.Apply(Dense.Linear(c_fc, x, Kernels)), Kernels).MoveToOuterDisposeScope();
        Tensor scaled = Dense.Linear(x, c_fc.weight!.mul(QuickGelu.HeldScale), c_fc.bias!.mul(QuickGelu.HeldScale), Kernels.FoldLinearInputs);
        return Dense.Linear(F.silu(scaled), c_proj.weight!.div(QuickGelu.HeldScale), c_proj.bias, Kernels.FoldLinearInputs).MoveToOuterDisposeScope();
    }
}

public sealed class ResidualAttentionBlock : nn.Module<Tensor, Tensor>
{
    private readonly PackedSelfAttention attn;
    private readonly Fp32LayerNorm ln_1;
    private readonly VisionMlp mlp;
    private readonly Fp32LayerNorm ln_2;

    public ResidualAttentionBlock(int width, int heads) : base(nameof(ResidualAttentionBlock))
    {
        attn = new PackedSelfAttention(width, heads);
        ln_1 = new Fp32LayerNorm(width, 1e-5);
        mlp = new VisionMlp(width);
        ln_2 = new Fp32LayerNorm(width, 1e-5);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = Sum.Of(x, attn.forward(ln_1.forward(x)));
        x = Sum.Of(x, mlp.forward(ln_2.forward(x)));
        return x.MoveToOuterDisposeScope();
    }
}

public sealed class VisionTransformerBody : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResidualAttentionBlock> resblocks;

    public VisionTransformerBody(int width, int layers, int heads) : base("Transformer")
    {
        resblocks = new ModuleList<ResidualAttentionBlock>(
            Enumerable.Range(0, layers).Select(_ => new ResidualAttentionBlock(width, heads)).ToArray());
        RegisterComponents();
    }

    public IList<ResidualAttentionBlock> Blocks => resblocks;

    /// <summary>Recompute each block in the backward pass instead of keeping its activations (training only).</summary>
    public bool GradCheckpointing { get; set; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in resblocks)
            x = GradCheckpointing && training ? Checkpoint.Run((h, _) => block.forward(h), x) : block.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>conv patches -> [class] + positions -> ln_pre -> blocks -> ln_post([class]) @ proj.</summary>
public sealed class VisionTransformer : nn.Module<Tensor, Tensor>, IKernelChoices
{
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly Parameter proj;
    private readonly Conv2d conv1;
    private readonly Fp32LayerNorm ln_pre;
    private readonly VisionTransformerBody transformer;
    private readonly Fp32LayerNorm ln_post;
    private readonly int width;
    private readonly int patch;

    public VisionTransformer(int resolution, int patch, int width, int layers, int heads, int outputDim)
        : base(nameof(VisionTransformer))
    {
        this.width = width;
        this.patch = patch;
        using Scalar scale = Math.Pow(width, -0.5);
        int grid = resolution / patch;
        class_embedding = nn.Parameter(randn(width) * scale);
        positional_embedding = nn.Parameter(randn(grid * grid + 1, width) * scale);
        proj = nn.Parameter(randn(width, outputDim) * scale);
        conv1 = nn.Conv2d(3, width, kernel_size: patch, stride: patch, bias: false);
        ln_pre = new Fp32LayerNorm(width, 1e-5);
        transformer = new VisionTransformerBody(width, layers, heads);
        ln_post = new Fp32LayerNorm(width, 1e-5);
        RegisterComponents();
    }

    public VisionTransformerBody Transformer => transformer;

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    /// <summary>The official mask_ratio (FLIP): in training, each image keeps a random (1 - ratio) share of its patch
    /// tokens (and its class token), drawn from the global generator; evaluation sees every patch.</summary>
    public double MaskRatio { get; set; }

    /// <param name="x">[N, 3, R, R] normalised pixels.</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = Kernels.PatchEmbeddingAsMatmul && x.shape[2] % patch == 0 && x.shape[3] % patch == 0
            ? EmbedPatches(x)
            : conv1.forward(x.to(conv1.weight!.dtype)).flatten(2).transpose(1, 2); // [N, g*g, W]
        Tensor cls = class_embedding.to(x.dtype).expand(x.shape[0], 1, width);
        x = Sum.Of(cat([cls, x], 1), positional_embedding.to(x.dtype));
        if (MaskRatio > 0 && training) x = KeepRandomPatches(x, MaskRatio);
        x = ln_pre.forward(x);
        x = transformer.forward(x);
        x = ln_post.forward(x.select(1, 0));
        return x.matmul(proj).MoveToOuterDisposeScope();
    }

    // conv1 as a matrix product: each patch's 3 x p x p pixels in the weight's (channel, row, column) order.
    Tensor EmbedPatches(Tensor pixels)
    {
        long n = pixels.shape[0], rows = pixels.shape[2] / patch, columns = pixels.shape[3] / patch, size = 3 * patch * patch;
        Tensor patches = pixels.to(conv1.weight!.dtype).reshape(n, 3, rows, patch, columns, patch).permute(0, 2, 4, 1, 3, 5).reshape(n * rows * columns, size);
        return patches.matmul(conv1.weight!.view(width, size).t()).view(n, rows * columns, width);
    }

    // As the official random_masking: floor((L - 1) * (1 - ratio)) patches kept per image, chosen by sorting uniform
    // noise, the class token always first.
    static Tensor KeepRandomPatches(Tensor x, double ratio)
    {
        long n = x.shape[0], l = x.shape[1], d = x.shape[2];
        long keep = (long)((l - 1) * (1 - ratio));
        Tensor noise = rand(n, l - 1, device: x.device);
        Tensor kept = noise.argsort(dim: 1).narrow(1, 0, keep).add(Sum.One, Sum.One);
        Tensor patches = x.gather(1, kept.unsqueeze(-1).expand(n, keep, d));
        return cat([x.narrow(1, 0, 1), patches], 1);
    }
}
