// Which collectives a rank uses: none alone, NCCL when the group trains on CUDA, else the CPU ring.
using ChineseClip.Training;
using ChineseClip.Training.Distributed;
using static TorchSharp.torch;

namespace ChineseClip.Distributed;

public static class Collectives
{
    /// <summary>World size 1: <see cref="SingleProcess"/>; a CUDA <paramref name="device"/> (training option
    /// device): <see cref="NcclCollectives"/>; otherwise <see cref="RingCollectives"/> with <paramref name="ring"/>.</summary>
    public static ICollectives Connect(int rank, int worldSize, IRendezvous rendezvous, string device, RingOptions ring)
    {
        if (worldSize < 2) return new SingleProcess();
        if (!TrainOptions.TryParseDevice(device, out Device parsed)) throw new ArgumentException($"device '{device}' is not cpu, cuda or cuda:N");
        return parsed.type == TorchSharp.DeviceType.CUDA
            ? NcclCollectives.Connect(rank, worldSize, rendezvous, parsed, ring.Timeout)
            : RingCollectives.Connect(rank, worldSize, rendezvous, ring);
    }
}
