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
    }

    /// <summary>Casts the fp32 weights (and buffers, e.g. BatchNorm statistics) into the copy and mirrors the
    /// train/eval mode of every module and the gradient checkpointing switch.</summary>
    public void PullWeights()
    {
        using var _ = no_grad();
        foreach (var (m, c) in _parameters) c.copy_(m);
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

    public void Dispose() => Compute.Dispose();
}
