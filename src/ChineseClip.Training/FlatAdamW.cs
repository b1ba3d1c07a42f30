// AdamW stepping over flat buffers. TorchSharp's AdamW updates parameter by parameter, about nine kernels each, and
// ViT-B-16 + RoBERTa-base has ~200 trainable tensors: on an H100 that loop took 29 of a 116 ms batch-128 bf16 step,
// launches rather than arithmetic. TorchSharp 0.107 binds neither torch's fused AdamW nor the multi-tensor (_foreach)
// ops, so we lay the tensors out for a flat update ourselves: every trainable parameter and both of its moments are
// views into one flat tensor per kind, group after group in the order and layout of the gradient bucket (GradientBucket,
// FlatLayout), and a step runs the same arithmetic as TorchSharp's loop, in the same order of operations, once per group
// slice.
//
// The state stays TorchSharp's (one AdamW.State per parameter, its moments now views), so state_dict, checkpoints,
// resume and the per-group learning rate work unchanged. A step checks that the layout still holds (each parameter
// and moment still lives at its place in the flats, the gradients are the bucket's, all states at the same step);
// when it does not (a parameter's storage was replaced, the bucket rebuilt for another trainable set), it falls back
// to TorchSharp's per-parameter step, which computes the same update.
using System.Runtime.CompilerServices;
using ChineseClip.Model;
using ChineseClip.Model.Runtime;
using ChineseClip.Model.Towers;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public sealed class FlatAdamW : AdamW
{
    // The update runs chunk by chunk, all of its element-wise passes over one chunk before the next, so that the
    // later passes find the chunk's weights, moments, gradient and denominator in the CPU's cache rather than in
    // memory. Each element's arithmetic is the same whatever the chunk (bit-identical results). 2^17 elements
    // (0.5 MiB of fp32 per tensor) measured best of 2^14..2^25 on the 2-core Intel Xeon: the AdamW phase of
    // `bench train-step --profile` fell from 543 to 282 ms for ViT-B-16 (2 threads) and from 71 to ~48 ms for
    // small-224 (1 thread) against 2^25-element chunks. On a GPU each pass is a kernel launch and memory is fast, so
    // there the chunks stay large: 2^17 would mean ~11,000 launches per ViT-B-16 step. The denominator is made per
    // chunk, too.
    public const long CpuChunkElements = 1L << 17, GpuChunkElements = 1L << 25;

    /// <summary>Elements per chunk of the update, by the parameters' device unless set (tests vary it to show that
    /// it does not change the result).</summary>
    internal long ChunkElements { get; init; }

    // The optimizer of each model, so that the bf16 compute copy (made before the optimizer) can find the fp32 flat
    // buffer to re-cast from (Bf16Compute.FlatCopy).
    static readonly ConditionalWeakTable<ClipModel, FlatAdamW> Optimizers = new();

    readonly ClipModel _model;
    readonly List<Parameter> _order;
    readonly long[] _offsets = [];
    readonly (long Start, long Count)[] _groupRanges;
    readonly Tensor? _weights, _expAvg, _expAvgSq;

    /// <summary>How many steps took the flat path and how many fell back (for tests and benchmarks).</summary>
    public int FlatSteps { get; private set; }
    public int FallbackSteps { get; private set; }

    public FlatAdamW(ClipModel model, IReadOnlyList<ParamGroup> groups, AdamWSettings s)
        : base(groups, s.Lr, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)
    {
        _model = model;
        _order = groups.SelectMany(g => g.Parameters).ToList();
        ChunkElements = _order.Count > 0 && _order[0].device_type != DeviceType.CPU ? GpuChunkElements : CpuChunkElements;
        _groupRanges = new (long, long)[groups.Count];
        Optimizers.AddOrUpdate(model, this);
        if (_order.Count == 0 || _order.Any(p => p.dtype != _order[0].dtype || p.device_type != _order[0].device_type || p.device_index != _order[0].device_index || !p.is_floating_point()))
            return; // nothing to flatten, or a mix the flats cannot hold: TorchSharp's loop
        // The gradient bucket's layout (aligned starts, padding between tensors): a group is one slice of each buffer,
        // its padding zero in all of them, so the update leaves it zero.
        (_offsets, long total) = FlatLayout.Of(_order);
        int index = 0;
        for (int g = 0; g < groups.Count; g++)
        {
            int count = groups[g].Parameters.Count();
            long start = count == 0 ? 0 : _offsets[index];
            long end = count == 0 ? 0 : _offsets[index + count - 1] + _order[index + count - 1].numel();
            _groupRanges[g] = (start, end - start);
            index += count;
        }
        // Owned by this optimizer (and, through the views, by the parameters), not by a dispose scope.
        _weights = zeros(total, dtype: _order[0].dtype, device: _order[0].device).DetachFromDisposeScope();
        _expAvg = zeros_like(_weights).DetachFromDisposeScope();
        _expAvgSq = zeros_like(_weights).DetachFromDisposeScope();
        using var _ = no_grad();
        for (int i = 0; i < _order.Count; i++)
        {
            var p = _order[i];
            using (var view = Slice(_weights, i))
            {
                view.copy_(p);
                p.set_(view); // the parameter now lives in the flat buffer (same Parameter object, same handle)
            }
            var state = (State)_state[p.Handle];
            Tensor avg = Slice(_expAvg, i), avgSq = Slice(_expAvgSq, i);
            avg.copy_(state.exp_avg);
            avgSq.copy_(state.exp_avg_sq);
            state.exp_avg.Dispose();
            state.exp_avg_sq.Dispose();
            state.exp_avg = avg;
            state.exp_avg_sq = avgSq;
        }
    }

    /// <summary>The newest FlatAdamW made for <paramref name="model"/> and not yet disposed, else null.</summary>
    public static FlatAdamW? Of(ClipModel model) => Optimizers.TryGetValue(model, out var o) ? o : null;

    /// <summary>The fp32 weights as one flat buffer (null when the parameters could not be flattened), the parameters in
    /// its order, and where each starts (<see cref="FlatLayout"/>).</summary>
    public Tensor? FlatWeights => _weights;
    public IReadOnlyList<Parameter> FlatOrder => _order;
    public IReadOnlyList<long> FlatOffsets => _offsets;

    /// <summary>Whether parameter <paramref name="i"/> of <see cref="FlatOrder"/> still lives at its place in
    /// <see cref="FlatWeights"/> (nothing replaced its storage).</summary>
    public bool InPlace(int i) =>
        _weights is not null && TorchNative.DataPointer(_order[i]) == TorchNative.DataPointer(_weights) + (nint)(_offsets[i] * _weights.ElementSize);

    Tensor Slice(Tensor flat, int i) => flat.narrow(0, _offsets[i], _order[i].numel()).view(_order[i].shape).DetachFromDisposeScope();

    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is not null || FlatGradients() is not Tensor gradients)
        {
            FallbackSteps++;
            return base.step(closure!);
        }
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        int g = 0;
        foreach (ParamGroup group in ParamGroups)
        {
            var (start, count) = _groupRanges[g++];
            if (count == 0) continue;
            var o = (Options)group.Options;
            double lr = o.LearningRate!.Value, beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, eps = o.eps!.Value, weightDecay = o.weight_decay!.Value;
            long stepNumber = 0;
            foreach (var p in group.Parameters) stepNumber = ++((State)_state[p.Handle]).step;
            double biasCorrection1 = 1 - Math.Pow(beta1, stepNumber), biasCorrection2 = 1 - Math.Pow(beta2, stepNumber);
            for (long at = start; at < start + count; at += ChunkElements)
            {
                long n = Math.Min(ChunkElements, start + count - at);
                using Tensor w = _weights!.narrow(0, at, n), m = _expAvg!.narrow(0, at, n), v = _expAvgSq!.narrow(0, at, n), grad = gradients.narrow(0, at, n);
                // TorchSharp's AdamW, operation for operation; each number a Scalar held across its call.
                using Scalar decay = 1 - lr * weightDecay, b1 = beta1, b2 = beta2, oneMinusB1 = 1 - beta1, oneMinusB2 = 1 - beta2,
                    correction2 = Math.Sqrt(biasCorrection2), epsilon = eps, stepSize = -lr / biasCorrection1;
                w.mul_(decay);
                m.mul_(b1).add_(grad, alpha: oneMinusB1);
                v.mul_(b2).addcmul_(grad, grad, value: oneMinusB2);
                using Tensor denom = v.sqrt();
                denom.div_(correction2).add_(epsilon, Sum.One);
                w.addcdiv_(m, denom, value: stepSize);
            }
        }
        FlatSteps++;
        return null!;
    }

    // The bucket's flat gradients when the layout holds, else null.
    Tensor? FlatGradients()
    {
        if (_weights is null) return null;
        foreach (ParamGroup group in ParamGroups)
        {
            var o = (Options)group.Options;
            if (o.amsgrad == true || o.maximize == true) return null;
            if (group.Parameters.Select(p => ((State)_state[p.Handle]).step).Distinct().Count() > 1) return null;
        }
        // The bucket as the backward pass filled it: For() would rebuild (and zero) one whose trainable set changed.
        if (GradientBucket.Existing(_model) is not GradientBucket bucket || bucket.Parameters.Count != _order.Count || bucket.Flat.dtype != _weights.dtype)
            return null;
        long elementSize = _weights.ElementSize;
        IntPtr weights = TorchNative.DataPointer(_weights), avg = TorchNative.DataPointer(_expAvg!), avgSq = TorchNative.DataPointer(_expAvgSq!),
            grads = TorchNative.DataPointer(bucket.Flat);
        for (int i = 0; i < _order.Count; i++)
        {
            var p = _order[i];
            var state = (State)_state[p.Handle];
            long at = _offsets[i] * elementSize;
            using var grad = p.grad; // a new handle to the gradient
            if (!ReferenceEquals(bucket.Parameters[i], p) || grad is null
                || TorchNative.DataPointer(p) != weights + (nint)at || TorchNative.DataPointer(grad) != grads + (nint)at
                || TorchNative.DataPointer(state.exp_avg) != avg + (nint)at || TorchNative.DataPointer(state.exp_avg_sq) != avgSq + (nint)at)
                return null;
        }
        return bucket.Flat;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing); // disposes the states' views
        if (disposing)
        {
            if (Optimizers.TryGetValue(_model, out var o) && ReferenceEquals(o, this)) Optimizers.Remove(_model);
            _weights?.Dispose();
            _expAvg?.Dispose();
            _expAvgSq?.Dispose();
        }
    }
}
