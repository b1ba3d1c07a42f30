// What of the NCCL collectives can be checked without a GPU: the missing library, the refusal of CPU tensors, the
// unique id's trip through the rendezvous, and which collectives a group gets. The collectives themselves run in
// `cnclip bench gpu --check` on a CUDA machine.
using System.Runtime.InteropServices;
using ChineseClip.Distributed;
using ChineseClip.Training.Distributed;
using static TorchSharp.torch;

namespace ChineseClip.Distributed.Tests;

public class NcclCollectivesTests
{
    static readonly bool NcclHere = NativeLibrary.TryLoad("libnccl.so.2", out _);

    [Fact]
    public void Without_libnccl_the_error_names_the_library_in_one_line()
    {
        if (NcclHere)
        {
            Assert.True(NcclCollectives.Version() > 0);
            return;
        }
        var e = Assert.Throws<NcclException>(() => NcclCollectives.Version());
        Assert.StartsWith("NCCL: libnccl.so.2 not found or not loadable (", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_group_on_cuda_gets_nccl_and_a_group_of_one_gets_no_communication()
    {
        var rendezvous = new FileRendezvous(Path.Combine(Path.GetTempPath(), "cnclip-nccl-" + Guid.NewGuid().ToString("N")));
        Assert.IsType<SingleProcess>(Collectives.Connect(0, 1, rendezvous, "cuda:0", new RingOptions()));
        if (!NcclHere)
            Assert.StartsWith("NCCL: libnccl.so.2", Assert.Throws<NcclException>(() => Collectives.Connect(0, 2, rendezvous, "cuda", new RingOptions())).Message);
        else if (!cuda.is_available())
            Assert.Contains("torch.cuda.is_available() is false", Assert.Throws<NotSupportedException>(() => Collectives.Connect(0, 2, rendezvous, "cuda", new RingOptions())).Message);
    }

    [Fact]
    public void Cpu_tensors_are_refused_before_any_nccl_call()
    {
        using var group = new NcclCollectives(1, 2, IntPtr.Zero, CPU, TimeSpan.FromSeconds(1));
        using var t = zeros(4);
        Assert.Equal("rank 1: NCCL all-reduce needs a CUDA tensor; this one is on cpu", Assert.Throws<ArgumentException>(() => group.AllReduceSum(t)).Message);
        Assert.Equal("rank 1: NCCL all-gather needs a CUDA tensor; this one is on cpu", Assert.Throws<ArgumentException>(() => group.AllGather(t)).Message);
        Assert.Equal("rank 1: NCCL broadcast needs a CUDA tensor; this one is on cpu", Assert.Throws<ArgumentException>(() => group.Broadcast(t, 0)).Message);
    }

    [Fact]
    public unsafe void The_unique_id_survives_the_rendezvous_address_and_anything_else_is_refused()
    {
        var bytes = new byte[NcclCollectives.UniqueIdBytes];
        new Random(7).NextBytes(bytes);
        var id = new NcclCollectives.UniqueId();
        bytes.CopyTo(new Span<byte>(id.Bytes, bytes.Length));

        string address = NcclCollectives.EncodeUniqueId(id);
        var back = NcclCollectives.DecodeUniqueId(address);
        Assert.Equal(bytes, new Span<byte>(back.Bytes, bytes.Length).ToArray());

        foreach (string bad in new[] { "127.0.0.1:5000", "nccl-id:AAAA", "nccl-id:%%%" })
            Assert.Contains("is not an NCCL unique id", Assert.Throws<NcclException>(() => NcclCollectives.DecodeUniqueId(bad)).Message);
    }
}
