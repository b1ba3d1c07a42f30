// AdamW with the official parameter groups and per-tower hyperparameters.
using ChineseClip.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public sealed record AdamWSettings(double Lr, double WeightDecay, double Beta1, double Beta2, double Eps)
{
    /// <summary>The official defaults: betas (0.9, 0.98) and eps 1e-6 for ViT towers, (0.9, 0.999) and 1e-8 for RN50.</summary>
    public static AdamWSettings OfficialFor(ClipConfig config, double lr = 5e-5, double weightDecay = 0.001) =>
        config.IsResNet ? new(lr, weightDecay, 0.9, 0.999, 1e-8) : new(lr, weightDecay, 0.9, 0.98, 1e-6);
}

public static class OptimizerFactory
{
    /// <summary>The official no-decay rule: the name contains "bn", "ln", "bias" or "logit_scale" (case-sensitive,
    /// so BERT's "LayerNorm" weights do get decay).</summary>
    public static bool IsNoDecay(string name) =>
        name.Contains("bn", StringComparison.Ordinal) || name.Contains("ln", StringComparison.Ordinal)
        || name.Contains("bias", StringComparison.Ordinal) || name.Contains("logit_scale", StringComparison.Ordinal);

    /// <summary>The trainable parameters in the official two groups, in model order within each: [0] without weight
    /// decay (<see cref="IsNoDecay"/>), [1] with it.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)>[] TrainableInGroupOrder(ClipModel model)
    {
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();
        return [trainable.Where(p => IsNoDecay(p.name)).ToList(), trainable.Where(p => !IsNoDecay(p.name)).ToList()];
    }

    /// <summary>The official AdamW (two parameter groups), stepping over flat buffers (<see cref="FlatAdamW"/>).</summary>
    public static AdamW CreateAdamW(ClipModel model, AdamWSettings s) => new FlatAdamW(model, Groups(model, s), s);

    /// <summary>The official AdamW's two parameter groups with their options.</summary>
    internal static AdamW.ParamGroup[] Groups(ClipModel model, AdamWSettings s)
    {
        var groups = TrainableInGroupOrder(model);
        return
        [
            new AdamW.ParamGroup(groups[0].Select(p => p.Parameter),
                new AdamW.Options { LearningRate = s.Lr, beta1 = s.Beta1, beta2 = s.Beta2, eps = s.Eps, weight_decay = 0 }),
            new AdamW.ParamGroup(groups[1].Select(p => p.Parameter),
                new AdamW.Options { LearningRate = s.Lr, beta1 = s.Beta1, beta2 = s.Beta2, eps = s.Eps, weight_decay = s.WeightDecay }),
        ];
    }

    /// <summary>After every step the official code clamps logit_scale to [0, ln 100].</summary>
    public static void ClampLogitScale(ClipModel model)
    {
        using var _ = no_grad();
        model.LogitScale.clamp_(LogitScaleMin, LogitScaleMax);
    }

    static readonly Scalar LogitScaleMin = 0, LogitScaleMax = Math.Log(100);
}
