// The symmetric InfoNCE loss of the official recipe: logits over the batch, labels = arange, mean of both directions.
using ChineseClip.Model.Towers;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Training;

public static class ContrastiveLoss
{
    static readonly Scalar Two = 2;

    /// <summary>(CE(image->text) + CE(text->image)) / 2 for normalised features of matching rows.</summary>
    public static Tensor Compute(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale) =>
        Compute(imageFeatures, textFeatures, logitScale, out _);

    /// <param name="logitsPerImage">logit_scale * image @ text^T (rows: images), for the in-batch accuracies.</param>
    public static Tensor Compute(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, out Tensor logitsPerImage)
    {
        using var scope = NewDisposeScope();
        logitsPerImage = logitScale * imageFeatures.matmul(textFeatures.t());
        using Scalar batch = imageFeatures.shape[0];
        Tensor labels = arange(batch, dtype: ScalarType.Int64, device: imageFeatures.device);
        Tensor loss = Sum.Of(F.cross_entropy(logitsPerImage, labels), F.cross_entropy(logitsPerImage.t(), labels)).div(Two);
        logitsPerImage = logitsPerImage.MoveToOuterDisposeScope();
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>The official data-parallel loss: every rank's features gathered, this rank's own (which keep their
    /// gradient) first and the others in rank order, logits over the global batch, labels = arange.</summary>
    public static Tensor ComputeGathered(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, ICollectives collectives,
        out Tensor logitsPerImage)
    {
        if (collectives.WorldSize == 1) return Compute(imageFeatures, textFeatures, logitScale, out logitsPerImage);
        using var scope = NewDisposeScope();
        Tensor Arrange(Tensor local)
        {
            Tensor[] all = collectives.AllGather(local);
            return cat([local, .. all.Where((_, r) => r != collectives.Rank)], 0);
        }
        Tensor loss = Compute(Arrange(imageFeatures), Arrange(textFeatures), logitScale, out logitsPerImage);
        logitsPerImage = logitsPerImage.MoveToOuterDisposeScope();
        return loss.MoveToOuterDisposeScope();
    }
}
