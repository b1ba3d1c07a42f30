// Every process that computes on the CPU sets libtorch's thread count once, before its first tensor operation; that is
// also the moment MKL's kernel choice must be settled (MklCpuPath), so both happen here.
namespace ChineseClip.Model.Runtime;

public static class TorchCpu
{
    /// <summary>Settles MKL's kernel choice (<see cref="MklCpuPath.Apply"/>), then sets libtorch's intra-op threads.</summary>
    public static void SetThreads(int threads)
    {
        MklCpuPath.Apply();
        TorchSharp.torch.set_num_threads(threads);
    }
}
