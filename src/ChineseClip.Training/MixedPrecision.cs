// bf16 compute with fp32 master weights. TorchSharp has no autocast, so instead of casting op by op we keep a bf16
// copy of the model for the forward and backward passes (the "master weights" scheme of mixed-precision training):
// before each step the fp32 weights are cast into the copy, after the backward its gradients are cast into the fp32
// gradient bucket, and AdamW updates the fp32 weights. The loss itself is computed in fp32 from the features, as
// autocast would (softmax/cross-entropy run in fp32 there).
using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public sealed class Bf16Compute : IDisposable
{
    readonly ClipModel _master;
    readonly List<(Tensor Master, Tensor Copy)> _parameters = [];
    readonly List<(Tensor Master, Tensor Copy)> _buffers = [];
    readonly List<(nn.Module Master, nn.Module Copy)> _modules;
    // The copy's trainable parameters, views into one bf16 buffer in gradient-bucket order (the master's FlatAdamW
    // order), so that re-casting them is one copy; the rest (frozen parameters, buffers) go one by one.
    readonly List<Tensor> _flatOrder = [];
    readonly long[] _flatOffsets = [];
    readonly Tensor? _flat;
    readonly List<(Tensor Master, Tensor Copy)> _others = [];

    /// <summary>How many re-casts were one flat copy (the master laid out by FlatAdamW), for tests and benchmarks.</summary>
    public int FlatPulls { get; private set; }

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
        foreach (var ((_, m), (_, c)) in master.named_parameters().Zip(Compute.named_parameters()))
        {
            c.requires_grad = m.requires_grad;
            _parameters.Add((m, c));
        }
        foreach (var ((_, m), (_, c)) in master.named_buffers().Zip(Compute.named_buffers())) _buffers.Add((m, c));
        _modules = master.modules().Zip(Compute.modules()).ToList();

        var trainable = OptimizerFactory.TrainableInGroupOrder(Compute).SelectMany(g => g).Select(p => p.Parameter).ToList();
        if (trainable.Count == 0) return;
        _flatOffsets = new long[trainable.Count];
        long total = 0;
        for (int i = 0; i < trainable.Count; i++)
        {
            _flatOffsets[i] = total;
            total += trainable[i].numel();
        }
        _flat = empty(total, dtype: ScalarType.BFloat16, device: trainable[0].device).DetachFromDisposeScope();
        using var _ = no_grad();
        for (int i = 0; i < trainable.Count; i++)
        {
            using var view = _flat.narrow(0, _flatOffsets[i], trainable[i].numel()).view(trainable[i].shape);
            view.copy_(trainable[i]);
            trainable[i].set_(view);
            _flatOrder.Add(trainable[i]);
        }
        var flatSet = new HashSet<Tensor>(_flatOrder, ReferenceEqualityComparer.Instance);
        _others.AddRange(_parameters.Where(pair => !flatSet.Contains(pair.Copy)));
    }

    // The master's flat fp32 weights when both sides are laid out alike, else null (then parameter by parameter).
    Tensor? FlatPair()
    {
        if (_flat is null || FlatAdamW.FlatWeightsOf(_master) is not Tensor master || master.numel() != _flat.numel()) return null;
        IntPtr flat = Model.Runtime.TorchNative.DataPointer(_flat);
        for (int i = 0; i < _flatOrder.Count; i++)
            if (Model.Runtime.TorchNative.DataPointer(_flatOrder[i]) != flat + (nint)(_flatOffsets[i] * 2)) return null;
        return master;
    }

    /// <summary>Casts the fp32 weights (and buffers, e.g. BatchNorm statistics) into the copy and mirrors the
    /// train/eval mode of every module and the gradient checkpointing switch.</summary>
    public void PullWeights()
    {
        using var _ = no_grad();
        if (FlatPair() is Tensor master)
        {
            _flat!.copy_(master);
            foreach (var (m, c) in _others) c.copy_(m);
            FlatPulls++;
        }
        else
        {
            foreach (var (m, c) in _parameters) c.copy_(m);
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

    public void Dispose()
    {
        Compute.Dispose();
        _flat?.Dispose();
    }
}
