// The collectives data-parallel training needs, behind one interface: in-process here (world size 1, no
// communication); a thread group, the CPU ring and NCCL on CUDA are in ChineseClip.Distributed.
using static TorchSharp.torch;

namespace ChineseClip.Training.Distributed;

public interface ICollectives : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }

    /// <summary>Sums a contiguous float32 tensor across ranks, in place.</summary>
    void AllReduceSum(Tensor flat);

    /// <summary>Every rank's tensor (same shape everywhere), in rank order, without gradient.</summary>
    Tensor[] AllGather(Tensor local);

    /// <summary>Overwrites the tensor with the root's, in place.</summary>
    void Broadcast(Tensor tensor, int root);

    void Barrier();
}

/// <summary>World size 1: nothing to communicate.</summary>
public sealed class SingleProcess : ICollectives
{
    public int Rank => 0;
    public int WorldSize => 1;
    public void AllReduceSum(Tensor flat) { }
    public Tensor[] AllGather(Tensor local) => [local.detach()];
    public void Broadcast(Tensor tensor, int root) { }
    public void Barrier() { }
    public void Dispose() { }
}
