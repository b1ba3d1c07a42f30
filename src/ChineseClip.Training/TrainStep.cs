// One single-process optimisation step of the official recipe (the data-parallel step arrives with collectives).
using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

/// <summary>What the official log line reports for a step: loss, in-batch accuracies both ways, logit scale.</summary>
public readonly record struct StepResult(float Loss, double ImageToTextAccuracy, double TextToImageAccuracy, float LogitScale);

public static class TrainStep
{
    static readonly SingleProcess Alone = new();

    /// <summary>Forward both towers, symmetric InfoNCE (over the global batch when data-parallel), backward,
    /// gradients summed across ranks (see GradientSync), AdamW step, logit-scale clamp.</summary>
    public static StepResult Run(ClipModel model, AdamW optimizer, Tensor pixels, Tensor ids, ICollectives? collectives = null)
    {
        collectives ??= Alone;
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        var output = model.forward(pixels, ids);
        Tensor loss = ContrastiveLoss.ComputeGathered(output.ImageFeatures, output.TextFeatures, output.LogitScale, collectives, out Tensor logits);
        loss.backward();
        GradientSync.SumGradients(model, collectives);
        optimizer.step();
        OptimizerFactory.ClampLogitScale(model);
        using var _ = no_grad();
        Tensor labels = arange(logits.shape[0], dtype: ScalarType.Int64);
        double i2t = logits.argmax(1).eq(labels).to(ScalarType.Float64).mean().item<double>();
        double t2i = logits.argmax(0).eq(labels).to(ScalarType.Float64).mean().item<double>();
        return new StepResult(loss.item<float>(), i2t, t2i, model.LogitScale.exp().item<float>());
    }
}
