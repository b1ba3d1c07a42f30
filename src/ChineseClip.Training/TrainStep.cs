// One single-process optimisation step of the official recipe (the data-parallel step arrives with the training issue).
using ChineseClip.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public static class TrainStep
{
    /// <summary>Forward both towers, symmetric InfoNCE, backward, AdamW step, logit-scale clamp; returns the loss.</summary>
    public static float Run(ClipModel model, AdamW optimizer, Tensor pixels, Tensor ids)
    {
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        var output = model.forward(pixels, ids);
        Tensor loss = ContrastiveLoss.Compute(output.ImageFeatures, output.TextFeatures, output.LogitScale);
        loss.backward();
        optimizer.step();
        OptimizerFactory.ClampLogitScale(model);
        return loss.item<float>();
    }
}
