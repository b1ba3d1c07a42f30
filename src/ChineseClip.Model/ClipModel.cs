// Chinese-CLIP: an image tower (ViT or ModifiedResNet) and a BERT text tower projected into one embedding space.
// Field names equal the official state_dict keys (without the `module.` prefix that DDP adds).
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Towers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model;

/// <summary>Normalised image and text features and exp(logit_scale), the inputs of the contrastive loss.</summary>
public readonly record struct ClipOutput(Tensor ImageFeatures, Tensor TextFeatures, Tensor LogitScale);

/// <summary>A checkpoint that does not fit the architecture it is loaded into.</summary>
public sealed class ModelLoadException(string message, Exception inner) : Exception(message, inner);

public sealed class ClipModel : nn.Module<Tensor, Tensor, ClipOutput>
{
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;
    private readonly nn.Module<Tensor, Tensor> visual;
    private readonly BertModel bert;

    public ClipModel(ClipConfig config) : base(nameof(ClipModel))
    {
        // MKL picks its kernels at its first product, and every product our programs compute comes after a model exists.
        Runtime.MklCpuPath.Apply();
        Config = config;
        text_projection = nn.Parameter(empty(config.TextHiddenSize, config.EmbedDim));
        using (Scalar initialScale = Math.Log(1 / 0.07))
            logit_scale = nn.Parameter(ones([]) * initialScale);
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

    /// <summary>The official mask_ratio (FLIP patch dropping in training); as official, only a ViT image tower has it.</summary>
    public void SetMaskRatio(double ratio)
    {
        if (ratio < 0 || ratio >= 1) throw new ArgumentOutOfRangeException(nameof(ratio), $"mask ratio {ratio} is not in [0, 1)");
        if (visual is VisionTransformer vit) vit.MaskRatio = ratio;
        else if (ratio > 0) throw new NotSupportedException($"{Config.Name}: mask_ratio needs a ViT image tower (the official code ignores it for ResNet)");
    }

    /// <summary>The official set_grad_checkpointing: every transformer block of both towers recomputes its
    /// activations in the backward pass. As official, not supported for the ResNet image tower.</summary>
    public void SetGradCheckpointing(bool enable)
    {
        if (visual is VisionTransformer vit) vit.Transformer.GradCheckpointing = enable;
        else if (enable) throw new NotSupportedException($"{Config.Name}: gradient checkpointing needs a ViT image tower (the official code does not support it for ResNet either)");
        bert.Encoder.GradCheckpointing = enable;
    }

    /// <summary>The kernel layout of both towers (<see cref="KernelChoices"/>), for every module that reads it.</summary>
    public KernelChoices Kernels
    {
        get => kernels;
        set
        {
            kernels = value;
            foreach (var m in modules().OfType<IKernelChoices>()) m.Kernels = value;
        }
    }

    KernelChoices kernels = KernelChoices.Default;

    /// <summary>Image embeddings (not normalised) of [N, 3, R, R] normalised pixels.</summary>
    public Tensor EncodeImage(Tensor pixels) => visual.forward(pixels);

    /// <summary>Text embeddings (not normalised): the [CLS] hidden state @ text_projection.</summary>
    /// <param name="padded">Whether the ids hold [PAD], when known (see BertModel.SkipMaskWhenUnpadded).</param>
    public Tensor EncodeText(Tensor ids, bool? padded = null)
    {
        using var scope = NewDisposeScope();
        Tensor cls = bert.Encode(ids, padded).select(1, 0);
        return cls.matmul(text_projection.to(cls.dtype)).MoveToOuterDisposeScope();
    }

    public override ClipOutput forward(Tensor pixels, Tensor ids)
    {
        using var scope = NewDisposeScope();
        // Asked before the image tower's work is queued, so that the device synchronisation it takes waits for little.
        bool? padded = bert.SkipMaskWhenUnpadded ? BertModel.HasPadding(ids) : null;
        Tensor image = Normalize(EncodeImage(pixels));
        Tensor text = Normalize(EncodeText(ids, padded));
        return new ClipOutput(image.MoveToOuterDisposeScope(), text.MoveToOuterDisposeScope(),
            logit_scale.exp().MoveToOuterDisposeScope());
    }

    /// <summary>Builds the architecture and loads a checkpoint in any supported format (official .pt, plain state
    /// dict, official or Hugging Face safetensors), strictly: missing, unexpected or mis-shaped keys are an error.</summary>
    public static ClipModel Load(ClipConfig config, string checkpointPath)
    {
        var model = new ClipModel(config);
        try
        {
            model.LoadWeights(CheckpointFormat.LoadAnyStateDict(checkpointPath));
        }
        catch (CheckpointMismatchException e)
        {
            model.Dispose();
            // One line for people; the full list stays on the inner exception.
            var problems = e.Missing.Select(k => "missing " + k).Concat(e.Unexpected.Select(k => "unexpected " + k))
                .Concat(e.MisShaped.Select(k => "mis-shaped " + k)).ToList();
            throw new ModelLoadException(
                $"{checkpointPath} does not fit {config.Name}: {e.Missing.Count} missing, {e.Unexpected.Count} unexpected, " +
                $"{e.MisShaped.Count} mis-shaped key(s), e.g. {string.Join("; ", problems.Take(3))}", e);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>Copies official-key weights into this model (fp16/bf16 values are converted), strictly.</summary>
    public void LoadWeights(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        var state = state_dict();
        StateDictCheck.CopyInto(state, stateDict);
    }

    /// <summary>L2 normalisation along the last dimension, as the official `x / x.norm(dim=-1, keepdim=True)`.</summary>
    public static Tensor Normalize(Tensor features) => F.normalize(features, p: 2, dim: -1);
}
