// Chinese-CLIP: an image tower (ViT or ModifiedResNet) and a BERT text tower projected into one embedding space.
// Field names equal the official state_dict keys (without the `module.` prefix that DDP adds).
using ChineseClip.Model.Towers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model;

/// <summary>Normalised image and text features and exp(logit_scale), the inputs of the contrastive loss.</summary>
public readonly record struct ClipOutput(Tensor ImageFeatures, Tensor TextFeatures, Tensor LogitScale);

public sealed class ClipModel : nn.Module<Tensor, Tensor, ClipOutput>
{
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;
    private readonly nn.Module<Tensor, Tensor> visual;
    private readonly BertModel bert;

    public ClipModel(ClipConfig config) : base(nameof(ClipModel))
    {
        Config = config;
        text_projection = nn.Parameter(empty(config.TextHiddenSize, config.EmbedDim));
        logit_scale = nn.Parameter(ones([]) * Math.Log(1 / 0.07));
        visual = config.IsResNet
            ? new ModifiedResNet(config.VisionLayers, config.EmbedDim, config.VisionHeads, config.ImageResolution, config.VisionWidth)
            : new VisionTransformer(config.ImageResolution, config.VisionPatchSize!.Value, config.VisionWidth,
                config.VisionLayers[0], config.VisionHeads, config.EmbedDim);
        bert = new BertModel(config);
        using (no_grad()) nn.init.normal_(text_projection, 0, Math.Pow(config.TextHiddenSize, -0.5));
        RegisterComponents();
    }

    public ClipConfig Config { get; }
    public nn.Module<Tensor, Tensor> Visual => visual;
    public BertModel Bert => bert;
    public Parameter LogitScale => logit_scale;

    /// <summary>Image embeddings (not normalised) of [N, 3, R, R] normalised pixels.</summary>
    public Tensor EncodeImage(Tensor pixels) => visual.forward(pixels);

    /// <summary>Text embeddings (not normalised): the [CLS] hidden state @ text_projection.</summary>
    public Tensor EncodeText(Tensor ids)
    {
        using var scope = NewDisposeScope();
        Tensor cls = bert.forward(ids).select(1, 0);
        return cls.matmul(text_projection.to(cls.dtype)).MoveToOuterDisposeScope();
    }

    public override ClipOutput forward(Tensor pixels, Tensor ids)
    {
        using var scope = NewDisposeScope();
        Tensor image = Normalize(EncodeImage(pixels));
        Tensor text = Normalize(EncodeText(ids));
        return new ClipOutput(image.MoveToOuterDisposeScope(), text.MoveToOuterDisposeScope(),
            logit_scale.exp().MoveToOuterDisposeScope());
    }

    /// <summary>L2 normalisation along the last dimension, as the official `x / x.norm(dim=-1, keepdim=True)`.</summary>
    public static Tensor Normalize(Tensor features) => F.normalize(features, p: 2, dim: -1);
}
