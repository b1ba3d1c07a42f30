// The text tower: classic post-LN BERT (Chinese RoBERTa-wwm-ext), no pooler. Field names are the official
// state_dict keys under `bert.`.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model.Towers;

public sealed class BertEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly Fp32LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertEmbeddings(ClipConfig c) : base(nameof(BertEmbeddings))
    {
        word_embeddings = nn.Embedding(c.VocabSize, c.TextHiddenSize);
        position_embeddings = nn.Embedding(c.TextMaxPositionEmbeddings, c.TextHiddenSize);
        token_type_embeddings = nn.Embedding(c.TextTypeVocabSize, c.TextHiddenSize);
        LayerNorm = new Fp32LayerNorm(c.TextHiddenSize, 1e-12);
        dropout = nn.Dropout(c.TextHiddenDropoutProb);
        RegisterComponents();
    }

    /// <param name="ids">[N, L] token ids; positions are 0..L-1 and every token type is 0, as the official code.</param>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long length = ids.shape[1];
        Tensor x = Sum.Of(Sum.Of(word_embeddings.forward(ids), position_embeddings.weight!.narrow(0, 0, length)), token_type_embeddings.weight![0]);
        return dropout.forward(LayerNorm.forward(x)).MoveToOuterDisposeScope();
    }
}

public sealed class BertSelfAttention : nn.Module<Tensor, Tensor?, Tensor>, IKernelChoices
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly int heads;
    private readonly double dropoutProb;

    public BertSelfAttention(ClipConfig c) : base(nameof(BertSelfAttention))
    {
        heads = c.TextNumAttentionHeads;
        dropoutProb = c.TextAttentionProbsDropoutProb;
        query = nn.Linear(c.TextHiddenSize, c.TextHiddenSize);
        key = nn.Linear(c.TextHiddenSize, c.TextHiddenSize);
        value = nn.Linear(c.TextHiddenSize, c.TextHiddenSize);
        RegisterComponents();
    }

    /// <summary>One matrix product over the concatenated query/key/value weights instead of three (the parameters
    /// and state_dict keys stay the official separate ones; the concatenation is a small copy per forward).</summary>
    public bool FusedQkv { get; set; }

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    /// <param name="mask">Additive mask [N, 1, 1, L] in x's dtype: 0 for tokens, -10000 for padding; null: no padding.</param>
    public override Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], l = x.shape[1], h = x.shape[2];
        Tensor q, k, v;
        if (FusedQkv)
        {
            Tensor qkv = Dense.Linear(x, cat([query.weight!, key.weight!, value.weight!], 0), cat([query.bias!, key.bias!, value.bias!], 0),
                Kernels.FoldLinearInputs);
            (q, k, v) = PackedQkv.Split(qkv, heads, Kernels);
        }
        else
        {
            Tensor Split(Linear proj) => Dense.Linear(proj, x, Kernels).view(n, l, heads, h / heads).transpose(1, 2);
            (q, k, v) = (Split(query), Split(key), Split(value));
        }
        Tensor context = F.scaled_dot_product_attention(q, k, v, mask, training ? dropoutProb : 0.0);
        return context.transpose(1, 2).reshape(n, l, h).MoveToOuterDisposeScope();
    }
}

/// <summary>dense -> dropout -> LayerNorm(x + residual): BERT's SelfOutput and Output share this shape.</summary>
public sealed class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>, IKernelChoices
{
    private readonly Linear dense;
    private readonly Fp32LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertResidualOutput(int inFeatures, ClipConfig c) : base("BertOutput")
    {
        dense = nn.Linear(inFeatures, c.TextHiddenSize);
        LayerNorm = new Fp32LayerNorm(c.TextHiddenSize, 1e-12);
        dropout = nn.Dropout(c.TextHiddenDropoutProb);
        RegisterComponents();
    }

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    public override Tensor forward(Tensor x, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.forward(Sum.Of(dropout.forward(Dense.Linear(dense, x, Kernels)), residual)).MoveToOuterDisposeScope();
    }
}

public sealed class BertAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(ClipConfig c) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(c);
        output = new BertResidualOutput(c.TextHiddenSize, c);
        RegisterComponents();
    }

    public BertSelfAttention Self => self;

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        return output.forward(self.forward(x, mask), x).MoveToOuterDisposeScope();
    }
}

public sealed class BertIntermediate : nn.Module<Tensor, Tensor>, IKernelChoices
{
    private readonly Linear dense;

    public BertIntermediate(ClipConfig c) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(c.TextHiddenSize, c.TextIntermediateSize);
        RegisterComponents();
    }

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return F.gelu(Dense.Linear(dense, x, Kernels)).MoveToOuterDisposeScope();
    }
}

public sealed class BertLayer : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(ClipConfig c) : base(nameof(BertLayer))
    {
        attention = new BertAttention(c);
        intermediate = new BertIntermediate(c);
        output = new BertResidualOutput(c.TextIntermediateSize, c);
        RegisterComponents();
    }

    public BertAttention Attention => attention;

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        Tensor attended = attention.forward(x, mask);
        return output.forward(intermediate.forward(attended), attended).MoveToOuterDisposeScope();
    }
}

public sealed class BertEncoder : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(ClipConfig c) : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, c.TextNumHiddenLayers).Select(_ => new BertLayer(c)).ToArray());
        RegisterComponents();
    }

    public IList<BertLayer> Layers => layer;

    /// <summary>Recompute each layer in the backward pass instead of keeping its activations (training only).</summary>
    public bool GradCheckpointing { get; set; }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        foreach (var l in layer)
            x = GradCheckpointing && training ? Checkpoint.Run((h, m) => l.forward(h, m), x, mask) : l.forward(x, mask);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>BERT without pooler: returns the last hidden states [N, L, H].</summary>
public sealed class BertModel : nn.Module<Tensor, Tensor>
{
    public const long PadId = 0;
    static readonly Scalar HeldPadId = PadId;
    // The additive attention mask's score at [PAD], as the official BERT.
    static readonly Scalar MaskedScore = -10000.0;

    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;

    public BertModel(ClipConfig c) : base(nameof(BertModel))
    {
        embeddings = new BertEmbeddings(c);
        encoder = new BertEncoder(c);
        RegisterComponents();
        InitializeWeights(c.TextInitializerRange);
    }

    public BertEncoder Encoder => encoder;

    /// <summary>Every self-attention computes query, key and value with one matrix product (see BertSelfAttention.FusedQkv).</summary>
    public bool FusedQkv
    {
        get => encoder.Layers.Count > 0 && encoder.Layers[0].Attention.Self.FusedQkv;
        set { foreach (var l in encoder.Layers) l.Attention.Self.FusedQkv = value; }
    }

    /// <summary>A batch without [PAD] runs its attention without a mask (the mask would add zeros only), which lets
    /// CUDA pick the flash kernel; finding out costs one device synchronisation per forward.</summary>
    public bool SkipMaskWhenUnpadded { get; set; }

    /// <summary>Whether any id is [PAD] (reads the ids back from the device).</summary>
    public static bool HasPadding(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return ids.eq(HeldPadId).any().item<bool>();
    }

    public override Tensor forward(Tensor ids) => Encode(ids, null);

    /// <param name="padded">Whether <paramref name="ids"/> hold [PAD] when the caller already knows (only read with
    /// <see cref="SkipMaskWhenUnpadded"/>).</param>
    public Tensor Encode(Tensor ids, bool? padded)
    {
        using var scope = NewDisposeScope();
        Tensor x = embeddings.forward(ids);
        // Attention mask from [PAD], applied additively with -10000 as the official BERT does; cast once to the
        // activations' dtype here rather than in every layer.
        Tensor? mask = SkipMaskWhenUnpadded && !(padded ?? HasPadding(ids)) ? null
            : ids.eq(HeldPadId).to(ScalarType.Float32).mul(MaskedScore).view(ids.shape[0], 1, 1, ids.shape[1]).to(x.dtype);
        return encoder.forward(x, mask).MoveToOuterDisposeScope();
    }

    // BERT's init_weights: normal(0, initializer_range) for Linear and Embedding weights, zero biases, LayerNorm 1/0.
    void InitializeWeights(double std)
    {
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.Contains("LayerNorm")) continue;
            if (name.EndsWith(".bias")) nn.init.zeros_(p);
            else nn.init.normal_(p, 0, std);
        }
    }
}
