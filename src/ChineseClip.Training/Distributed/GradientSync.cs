// Data-parallel gradients: all gradients live in one flat bucket, so that one all-reduce covers them; and rank 0's
// initial weights are broadcast.
//
// Every rank's loss is the loss of the whole global batch (features are gathered), but only its own features carry a
// gradient, so the per-rank gradients add up to the gradient of the global-batch loss. We therefore sum, which makes
// N ranks take exactly the step one process takes on the global batch. DistributedDataParallel (the official code)
// averages instead, i.e. its gradient is 1/N of that; AdamW is invariant to that scale except through eps (1e-6),
// so the difference from the official runs is tiny, while the sum keeps runs comparable across world sizes.
using System.Runtime.CompilerServices;
using ChineseClip.Model;
using static TorchSharp.torch;

namespace ChineseClip.Training.Distributed;

/// <summary>One flat tensor (of the parameters' dtype) holding the gradients of every trainable parameter: each parameter's .grad is a
/// view into it, so autograd accumulates straight into the bucket (no gather before the all-reduce, no scatter after)
/// and zeroing is one kernel.</summary>
public sealed class GradientBucket : IDisposable
{
    static readonly ConditionalWeakTable<ClipModel, GradientBucket> Buckets = new();

    readonly List<TorchSharp.Modules.Parameter> _parameters;
    readonly List<Tensor> _views = [];
    public Tensor Flat { get; }

    GradientBucket(List<TorchSharp.Modules.Parameter> parameters)
    {
        _parameters = parameters;
        var (offsets, total) = FlatLayout.Of(parameters);
        Flat = zeros(total, dtype: parameters[0].dtype, device: parameters[0].device).DetachFromDisposeScope(); // lives as long as the model, not one step
        using var _ = no_grad();
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            var view = Flat.narrow(0, offsets[i], p.numel()).view(p.shape).DetachFromDisposeScope();
            using (var old = p.grad) if (old is not null) view.copy_(old); // keep what was accumulated before
            p.grad = view;
            _views.Add(view);
        }
    }

    /// <summary>The parameters, in bucket order.</summary>
    public IReadOnlyList<TorchSharp.Modules.Parameter> Parameters => _parameters;

    /// <summary>The model's bucket, made on first use and again when the set of trainable parameters changed (e.g.
    /// the vision tower was frozen after the first step). Its order is the optimizer's (the no-decay group first, see
    /// <see cref="OptimizerFactory.TrainableInGroupOrder"/>), so that AdamW can update each group as one slice.</summary>
    public static GradientBucket For(ClipModel model)
    {
        var trainable = OptimizerFactory.TrainableInGroupOrder(model).SelectMany(g => g).Select(p => p.Parameter).ToList();
        if (Buckets.TryGetValue(model, out var bucket) && bucket.Matches(trainable)) return bucket;
        bucket?.Dispose();
        bucket = new GradientBucket(trainable);
        Buckets.AddOrUpdate(model, bucket);
        return bucket;
    }

    /// <summary>The model's bucket as it is, without making one (null when there is none yet).</summary>
    public static GradientBucket? Existing(ClipModel model) => Buckets.TryGetValue(model, out var bucket) ? bucket : null;

    bool Matches(List<TorchSharp.Modules.Parameter> trainable)
    {
        if (trainable.Count != _parameters.Count) return false;
        for (int i = 0; i < trainable.Count; i++)
            if (!ReferenceEquals(trainable[i], _parameters[i])) return false;
        return true;
    }

    public void Zero() => Flat.zero_();

    public void Dispose()
    {
        foreach (var v in _views) v.Dispose();
        Flat.Dispose();
    }
}

/// <summary>Where each tensor of a flat buffer starts: one after another, each start rounded up to a multiple of
/// <see cref="Alignment"/> elements, so that every view is as aligned as a tensor of its own (CUDA's matrix kernels want
/// 16-byte-aligned operands, and a one-element tensor such as logit_scale would otherwise shift all that follow it).
/// The gradient bucket and FlatAdamW's buffers share it, so a parameter sits at the same offset in each.</summary>
public static class FlatLayout
{
    public const long Alignment = 64;

    public static (long[] Offsets, long Total) Of(IReadOnlyList<TorchSharp.Modules.Parameter> tensors)
    {
        var offsets = new long[tensors.Count];
        long at = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            offsets[i] = at;
            at = (at + tensors[i].numel() + Alignment - 1) / Alignment * Alignment;
        }
        return (offsets, at);
    }
}

public static class GradientSync
{
    /// <summary>Sums the gradients across ranks; returns the seconds spent in the all-reduce itself (0 at world size 1).</summary>
    public static double SumGradients(ClipModel model, ICollectives collectives)
    {
        if (collectives.WorldSize == 1) return 0;
        var bucket = GradientBucket.For(model);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        collectives.AllReduceSum(bucket.Flat);
        return watch.Elapsed.TotalSeconds;
    }

    public static void BroadcastWeights(ClipModel model, ICollectives collectives)
    {
        if (collectives.WorldSize == 1) return;
        using var _ = no_grad();
        foreach (var (_, t) in model.state_dict()) collectives.Broadcast(t, root: 0);
    }
}
