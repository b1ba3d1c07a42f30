// Data-parallel gradients: all gradients in one flat bucket, one all-reduce; and rank 0's initial weights broadcast.
//
// Every rank's loss is the loss of the whole global batch (features are gathered), but only its own features carry a
// gradient, so the per-rank gradients add up to the gradient of the global-batch loss. We therefore sum, which makes
// N ranks take exactly the step one process takes on the global batch. DistributedDataParallel (the official code)
// averages instead, i.e. its gradient is 1/N of that; AdamW is invariant to that scale except through eps (1e-6),
// so the difference from the official runs is tiny, while the sum keeps runs comparable across world sizes.
using ChineseClip.Model;
using static TorchSharp.torch;

namespace ChineseClip.Training.Distributed;

public static class GradientSync
{
    /// <summary>Returns the seconds spent in the all-reduce itself (0 at world size 1).</summary>
    public static double SumGradients(ClipModel model, ICollectives collectives)
    {
        if (collectives.WorldSize == 1) return 0;
        using var scope = NewDisposeScope();
        var parameters = model.parameters().Where(p => p.requires_grad).ToList();
        foreach (var p in parameters) p.grad ??= zeros_like(p).MoveToOuterDisposeScope();
        Tensor bucket = cat(parameters.Select(p => p.grad!.flatten()).ToList());
        var watch = System.Diagnostics.Stopwatch.StartNew();
        collectives.AllReduceSum(bucket);
        double seconds = watch.Elapsed.TotalSeconds;
        long offset = 0;
        using var _ = no_grad();
        foreach (var p in parameters)
        {
            long n = p.numel();
            p.grad!.copy_(bucket.narrow(0, offset, n).view_as(p));
            offset += n;
        }
        return seconds;
    }

    public static void BroadcastWeights(ClipModel model, ICollectives collectives)
    {
        if (collectives.WorldSize == 1) return;
        using var _ = no_grad();
        foreach (var (_, t) in model.state_dict()) collectives.Broadcast(t, root: 0);
    }
}
