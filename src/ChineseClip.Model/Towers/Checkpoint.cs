// Gradient checkpointing (the official --grad-checkpointing): a block's activations are not kept for the backward
// pass; the backward runs the block's forward again, then its backward. It trades one more forward per block for the
// memory of every intermediate activation. TorchSharp has no torch.utils.checkpoint, so this is the reentrant variant
// PyTorch's checkpoint uses by default, built on TorchSharp's custom autograd functions.
using static TorchSharp.torch;

namespace ChineseClip.Model.Towers;

public static class Checkpoint
{
    /// <summary>block(x, aux), checkpointed when autograd would record it (grad mode on and x requiring grad); else
    /// plain. <paramref name="aux"/> is a tensor input that needs no gradient (an attention mask): it is kept alive
    /// for the recomputation, which a closure over it would not do.</summary>
    public static Tensor Run(Func<Tensor, Tensor?, Tensor> block, Tensor x, Tensor? aux = null)
    {
        if (!is_grad_enabled() || !x.requires_grad) return block(x, aux);
        return BlockFunction.apply(x, aux!, block);
    }

    sealed class BlockFunction : autograd.SingleTensorFunction<BlockFunction>
    {
        public override string Name => "CheckpointedBlock";

        // Runs under no_grad (the function's node stands for the whole block in the graph). The inputs and the RNG
        // state are kept so that the recomputation draws the same dropout masks.
        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var aux = vars[1] as Tensor;
            ctx.save_for_backward(aux is null ? [x] : [x, aux]);
            ctx.save_data("block", vars[2]);
            // As bytes: TorchSharp's saved data holds no tensors (they go through save_for_backward).
            using (var state = get_rng_state()) ctx.save_data("rng", state.data<byte>().ToArray());
            return ((Func<Tensor, Tensor?, Tensor>)vars[2])(x, aux);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var block = (Func<Tensor, Tensor?, Tensor>)ctx.get_data("block");
            using var rng = tensor((byte[])ctx.get_data("rng"));
            var saved = ctx.get_saved_variables();
            Tensor inputGrad;
            using (var scope = NewDisposeScope())
            {
                using var after = get_rng_state();
                set_rng_state(rng);
                Tensor x = saved[0].detach().requires_grad_(true);
                Tensor y;
                using (enable_grad()) y = block(x, saved.Count > 1 ? saved[1] : null);
                set_rng_state(after);
                // The block's parameters receive their gradients here (accumulated into .grad), the input's is returned.
                autograd.backward([y], [gradOutput]);
                inputGrad = x.grad!.MoveToOuterDisposeScope();
            }
            return [inputGrad, null!, null!];
        }
    }
}
