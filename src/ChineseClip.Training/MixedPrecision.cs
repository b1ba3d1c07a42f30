// bf16 compute with fp32 master weights. TorchSharp has no autocast, so instead of casting op by op we keep a bf16
// copy of the model for the forward and backward passes (the "master weights" scheme of mixed-precision training):
// before each step the fp32 weights are cast into the copy, after the backward its gradients are cast into the fp32
// gradient bucket, and AdamW updates the fp32 weights. The loss itself is computed in fp32 from the features, as
// autocast would (softmax/cross-entropy run in fp32 there).
//
// FlatCopy (on by default; H200, bench/gpu/RESULTS.md call 6c: re-cast 2.6 -> 0.8 ms, step 80.0 -> 78.1 ms, the same
// weights and losses bit for bit): the re-cast is one copy of FlatAdamW's fp32 flat buffer into a bf16 buffer of the
// same layout, the copy's parameters being views into it, instead of one copy per tensor (~200 launches).
// FlatLayout's aligned starts matter here: a first try laid the bf16 views end to end, 2 bytes off the 16-byte
// alignment of CUDA's matrix kernels, and the step ran 2x slower (bench/gpu/RESULTS.md, call 5).
using ChineseClip.Model;
using ChineseClip.Model.Runtime;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public sealed class Bf16Compute : IDisposable
{
    readonly ClipModel _master;
    readonly List<(Tensor Master, Tensor Copy)> _parameters = [];
    readonly List<(Tensor Master, Tensor Copy)> _buffers = [];
    readonly List<(nn.Module Master, nn.Module Copy)> _modules;
    FlatCast? _flat;

    // The bf16 buffer laid out like Source's fp32 flat buffer; Covered[k]: pair k of _parameters lives in both flats
    // (at Offsets[k]); the others are re-cast one by one.
    sealed record FlatCast(FlatAdamW Source, Tensor Weights, bool[] Covered, long[] Offsets);

    /// <summary>Re-cast the weights with one copy from FlatAdamW's fp32 flat buffer into a bf16 buffer laid out the
    /// same way (the copy's parameters become views into it). Falls back to one copy per tensor whenever that layout
    /// does not hold (another optimizer, a parameter whose storage was replaced). On by default.</summary>
    public bool FlatCopy { get; set; } = true;

    /// <summary>How many re-casts took the one-copy path and how many copied tensor by tensor (tests, benchmarks).</summary>
    public int FlatPulls { get; private set; }
    public int PerTensorPulls { get; private set; }

    /// <summary>The bf16 copy the forward and backward passes run on.</summary>
    public ClipModel Compute { get; }

    public Bf16Compute(ClipModel master)
    {
        _master = master;
        // Building the copy draws random initial weights: keep the generator where it was, so that a bf16 run's
        // dropout masks and data order do not depend on the copy's existence.
        using (var state = get_rng_state())
        {
            Compute = new ClipModel(master.Config);
            set_rng_state(state);
        }
        Compute.to(master.LogitScale.device);
        Compute.to(ScalarType.BFloat16);
        Compute.Kernels = master.Kernels;
        foreach (var ((_, m), (_, c)) in master.named_parameters().Zip(Compute.named_parameters()))
        {
            c.requires_grad = m.requires_grad;
            _parameters.Add((m, c));
        }
        foreach (var ((_, m), (_, c)) in master.named_buffers().Zip(Compute.named_buffers())) _buffers.Add((m, c));
        _modules = master.modules().Zip(Compute.modules()).ToList();
    }

    /// <summary>Casts the fp32 weights (and buffers, e.g. BatchNorm statistics) into the copy and mirrors the
    /// train/eval mode of every module and the gradient checkpointing switch.</summary>
    public void PullWeights()
    {
        using var _ = no_grad();
        if (FlatCopy && Flat() is FlatCast flat)
        {
            flat.Weights.copy_(flat.Source.FlatWeights!);
            for (int k = 0; k < _parameters.Count; k++) if (!flat.Covered[k]) _parameters[k].Copy.copy_(_parameters[k].Master);
            FlatPulls++;
        }
        else
        {
            foreach (var (m, c) in _parameters) c.copy_(m);
            PerTensorPulls++;
        }
        foreach (var (m, c) in _buffers) if (m.is_floating_point()) c.copy_(m);
        foreach (var (m, c) in _modules) if (c.training != m.training) c.train(m.training);
    }

    /// <summary>Casts the copy's gradients into the fp32 bucket the all-reduce and AdamW use, and carries the
    /// buffers the forward updated (BatchNorm running statistics) back to the fp32 model.</summary>
    public void PushGradients()
    {
        using var _ = no_grad();
        GradientBucket.For(_master).Flat.copy_(GradientBucket.For(Compute).Flat);
        foreach (var (m, c) in _buffers) if (m.is_floating_point()) m.copy_(c);
    }

    // The bf16 flat buffer when the one-copy re-cast can be used now: made (or remade, for a new optimizer) on first
    // use, then checked each step (every covered pair still at its offset in both buffers); null means per tensor.
    FlatCast? Flat()
    {
        if (FlatAdamW.Of(_master) is not FlatAdamW optimizer || optimizer.FlatWeights is not Tensor fp32) return null;
        if (_flat is not null && ReferenceEquals(_flat.Source, optimizer) && _flat.Weights.numel() == fp32.numel() && Holds(_flat, fp32)) return _flat;
        var index = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < optimizer.FlatOrder.Count; i++)
        {
            if (!optimizer.InPlace(i)) return null;
            index[optimizer.FlatOrder[i]] = i;
        }
        var covered = new bool[_parameters.Count];
        var offsets = new long[_parameters.Count];
        Tensor weights = zeros(fp32.numel(), dtype: ScalarType.BFloat16, device: fp32.device).DetachFromDisposeScope();
        for (int k = 0; k < _parameters.Count; k++)
        {
            var (m, c) = _parameters[k];
            if (m is not Parameter p || !index.TryGetValue(p, out int i)) continue;
            offsets[k] = optimizer.FlatOffsets[i];
            using var view = weights.narrow(0, offsets[k], c.numel()).view(c.shape);
            view.copy_(c);
            c.set_(view); // the copy's parameter now lives in the bf16 flat buffer (same Parameter object)
            covered[k] = true;
        }
        _flat?.Weights.Dispose();
        _flat = new FlatCast(optimizer, weights, covered, offsets);
        return _flat;
    }

    bool Holds(FlatCast flat, Tensor fp32)
    {
        IntPtr master = TorchNative.DataPointer(fp32), copy = TorchNative.DataPointer(flat.Weights);
        for (int k = 0; k < _parameters.Count; k++)
        {
            if (!flat.Covered[k]) continue;
            var (m, c) = _parameters[k];
            if (TorchNative.DataPointer(m) != master + (nint)(flat.Offsets[k] * fp32.ElementSize)
                || TorchNative.DataPointer(c) != copy + (nint)(flat.Offsets[k] * flat.Weights.ElementSize))
                return false;
        }
        return true;
    }

    public void Dispose()
    {
        Compute.Dispose();
        _flat?.Weights.Dispose();
    }
}
