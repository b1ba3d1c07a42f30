// The collectives of CUDA ranks: NCCL (libnccl.so.2) through P/Invoke. Rank 0 creates the communicator's unique id and
// hands it to the others as its rendezvous address; each rank then joins with ncclCommInitRank.
//
// Stream: TorchSharp 0.107 exposes no CUDA stream, and libtorch's current stream is the legacy default stream unless
// code changes it, so the collectives are enqueued on stream 0 (null): ordered after the backward pass that produced
// the gradients and before the optimizer step that reads them. Each collective then waits for the device
// (torch.cuda.synchronize) while watching ncclCommGetAsyncError and the clock, so a lost rank ends in an abort and a
// one-line error naming this rank instead of a hang. That wait costs the overlap a dedicated stream would give.
using System.Diagnostics;
using System.Runtime.InteropServices;
using ChineseClip.Model.Runtime;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Distributed;

/// <summary>NCCL could not be used: the library is missing, or a call failed (the message names rank and call).</summary>
public sealed class NcclException(string message, Exception? inner = null) : IOException(message, inner);

public sealed class NcclCollectives : ICollectives
{
    const string Library = "libnccl.so.2";
    const string IdPrefix = "nccl-id:";
    public const int UniqueIdBytes = 128;

    readonly Device _device;
    readonly TimeSpan _timeout;
    IntPtr _comm;

    internal NcclCollectives(int rank, int worldSize, IntPtr comm, Device device, TimeSpan timeout)
    {
        (Rank, WorldSize, _comm, _device, _timeout) = (rank, worldSize, comm, device, timeout);
    }

    public int Rank { get; }
    public int WorldSize { get; }

    /// <summary>Meets the other ranks through the rendezvous (rank 0's address carries the unique id) and creates the
    /// communicator on <paramref name="device"/>. World size 1 is allowed.</summary>
    public static NcclCollectives Connect(int rank, int worldSize, IRendezvous rendezvous, Device device, TimeSpan timeout)
    {
        int version = Version();
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in 0..{worldSize - 1}");
        if (device.type != DeviceType.CUDA) throw new ArgumentException($"rank {rank}: NCCL needs a CUDA device, not {device}");
        int count = cuda.is_available() ? cuda.device_count() : 0;
        if (count == 0) throw new NotSupportedException($"rank {rank}: NCCL needs a CUDA device; torch.cuda.is_available() is false");
        // "cuda" without an index: one GPU per rank of this machine.
        if (device.index < 0) device = new Device(DeviceType.CUDA, rank % count);
        if (device.index >= count) throw new NotSupportedException($"rank {rank}: {device} asked for, only {count} CUDA device(s) here");
        if (device.index > 0) CudaRuntime.SetDevice(device.index);
        string mine = $"nccl-rank-{rank}";
        if (rank == 0)
        {
            Call(rank, "ncclGetUniqueId", Native.GetUniqueId(out UniqueId id));
            mine = EncodeUniqueId(id);
        }
        var addresses = rendezvous.Exchange(rank, worldSize, mine, timeout);
        UniqueId shared = DecodeUniqueId(addresses[0]);
        var init = Task.Run(() =>
        {
            Call(rank, "ncclCommInitRank", Native.CommInitRank(out IntPtr comm, worldSize, shared, rank));
            return comm;
        });
        if (!init.Wait(timeout))
            throw new TimeoutException($"rank {rank}: NCCL {version} communicator of {worldSize} rank(s) not formed within {timeout.TotalSeconds:F0} s (a rank did not join)");
        return new NcclCollectives(rank, worldSize, init.GetAwaiter().GetResult(), device, timeout);
    }

    /// <summary>NCCL's version code (e.g. 22703 for 2.27.3); a missing library is reported in one line.</summary>
    public static int Version()
    {
        try
        {
            Call(-1, "ncclGetVersion", Native.GetVersion(out int version));
            return version;
        }
        catch (DllNotFoundException e)
        {
            throw new NcclException($"NCCL: {Library} not found or not loadable ({FirstLine(e.Message)}); install NCCL (e.g. the nvidia-nccl wheel) and put its lib folder on LD_LIBRARY_PATH", e);
        }
    }

    public void AllReduceSum(Tensor flat)
    {
        RequireDeviceTensor(flat, "all-reduce");
        int type = flat.dtype switch
        {
            ScalarType.Float32 => 7,
            ScalarType.BFloat16 => 9,
            _ => throw new ArgumentException($"rank {Rank}: NCCL all-reduce takes float32 or bfloat16, not {flat.dtype}"),
        };
        IntPtr data = TorchNative.DataPointer(flat);
        Check("ncclAllReduce", Native.AllReduce(data, data, (nuint)flat.numel(), type, 0 /* sum */, _comm, IntPtr.Zero));
        Wait("all-reduce");
    }

    public Tensor[] AllGather(Tensor local)
    {
        RequireDeviceTensor(local, "all-gather");
        using var scope = NewDisposeScope();
        Tensor send = local.detach().contiguous();
        Tensor gathered = empty([WorldSize, .. local.shape], dtype: local.dtype, device: local.device);
        long bytes = send.numel() * send.ElementSize;
        Check("ncclAllGather", Native.AllGather(TorchNative.DataPointer(send), TorchNative.DataPointer(gathered), (nuint)bytes, 0 /* int8 */, _comm, IntPtr.Zero));
        Wait("all-gather");
        return Enumerable.Range(0, WorldSize).Select(r => gathered[r].MoveToOuterDisposeScope()).ToArray();
    }

    public void Broadcast(Tensor tensor, int root)
    {
        RequireDeviceTensor(tensor, "broadcast");
        IntPtr data = TorchNative.DataPointer(tensor);
        Check("ncclBroadcast", Native.Broadcast(data, data, (nuint)(tensor.numel() * tensor.ElementSize), 0 /* int8 */, root, _comm, IntPtr.Zero));
        Wait("broadcast");
    }

    public void Barrier()
    {
        using var one = ones(1, dtype: ScalarType.Float32, device: _device);
        AllReduceSum(one);
    }

    // Collectives work in place on device memory, so a tensor elsewhere, or a strided view, would be read wrongly.
    void RequireDeviceTensor(Tensor t, string operation)
    {
        if (t.device_type != DeviceType.CUDA)
            throw new ArgumentException($"rank {Rank}: NCCL {operation} needs a CUDA tensor; this one is on {t.device}");
        if (!t.is_contiguous()) throw new ArgumentException($"rank {Rank}: NCCL {operation} needs a contiguous tensor");
    }

    void Wait(string operation)
    {
        var done = Task.Run(() => cuda.synchronize(_device));
        var watch = Stopwatch.StartNew();
        while (!done.Wait(TimeSpan.FromMilliseconds(5)))
        {
            Check("ncclCommGetAsyncError", Native.CommGetAsyncError(_comm, out int async));
            if (async is not (0 or 7))
            {
                Abort();
                throw new NcclException($"rank {Rank}: NCCL {operation} failed: {ErrorString(async)} (communicator aborted)");
            }
            if (watch.Elapsed > _timeout)
            {
                Abort();
                throw new TimeoutException($"rank {Rank}: NCCL {operation} did not complete within {_timeout.TotalSeconds:F0} s; communicator aborted (another of the {WorldSize} ranks is gone or stuck)");
            }
        }
        done.GetAwaiter().GetResult();
    }

    void Abort()
    {
        if (_comm == IntPtr.Zero) return;
        Native.CommAbort(_comm);
        _comm = IntPtr.Zero;
    }

    void Check(string call, int result) => Call(Rank, call, result);

    static void Call(int rank, string call, int result)
    {
        if (result != 0) throw new NcclException($"{(rank >= 0 ? $"rank {rank}: " : "")}{call} failed: {ErrorString(result)}");
    }

    static string ErrorString(int result) => $"{Marshal.PtrToStringUTF8(Native.GetErrorString(result)) ?? "unknown"} (ncclResult {result})";

    // .NET's DllNotFoundException text goes on about strace and LD_DEBUG after the first sentence.
    static string FirstLine(string s) => s.Split('\n')[0].Split(" In order to help", 2)[0].Trim().TrimEnd('.');

    /// <summary>How rank 0 publishes the unique id in the rendezvous.</summary>
    public static unsafe string EncodeUniqueId(UniqueId id) => IdPrefix + Convert.ToBase64String(new ReadOnlySpan<byte>(id.Bytes, UniqueIdBytes));

    public static unsafe UniqueId DecodeUniqueId(string address)
    {
        byte[] bytes;
        try
        {
            bytes = address.StartsWith(IdPrefix, StringComparison.Ordinal) ? Convert.FromBase64String(address[IdPrefix.Length..]) : [];
        }
        catch (FormatException)
        {
            bytes = [];
        }
        if (bytes.Length != UniqueIdBytes)
            throw new NcclException($"rank 0's rendezvous address '{(address.Length > 40 ? address[..40] + "..." : address)}' is not an NCCL unique id (are all ranks on CUDA?)");
        var id = new UniqueId();
        bytes.CopyTo(new Span<byte>(id.Bytes, UniqueIdBytes));
        return id;
    }

    public void Dispose()
    {
        if (_comm == IntPtr.Zero) return;
        Native.CommDestroy(_comm);
        _comm = IntPtr.Zero;
    }

    /// <summary>ncclUniqueId: 128 opaque bytes, passed by value to ncclCommInitRank.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct UniqueId
    {
        public fixed byte Bytes[UniqueIdBytes];
    }

    static class Native
    {
        [DllImport(Library, EntryPoint = "ncclGetVersion")] public static extern int GetVersion(out int version);
        [DllImport(Library, EntryPoint = "ncclGetUniqueId")] public static extern int GetUniqueId(out UniqueId id);
        [DllImport(Library, EntryPoint = "ncclCommInitRank")] public static extern int CommInitRank(out IntPtr comm, int nranks, UniqueId id, int rank);
        [DllImport(Library, EntryPoint = "ncclAllReduce")]
        public static extern int AllReduce(IntPtr send, IntPtr receive, nuint count, int dataType, int op, IntPtr comm, IntPtr stream);
        [DllImport(Library, EntryPoint = "ncclAllGather")]
        public static extern int AllGather(IntPtr send, IntPtr receive, nuint sendCount, int dataType, IntPtr comm, IntPtr stream);
        [DllImport(Library, EntryPoint = "ncclBroadcast")]
        public static extern int Broadcast(IntPtr send, IntPtr receive, nuint count, int dataType, int root, IntPtr comm, IntPtr stream);
        [DllImport(Library, EntryPoint = "ncclCommGetAsyncError")] public static extern int CommGetAsyncError(IntPtr comm, out int asyncError);
        [DllImport(Library, EntryPoint = "ncclCommAbort")] public static extern int CommAbort(IntPtr comm);
        [DllImport(Library, EntryPoint = "ncclCommDestroy")] public static extern int CommDestroy(IntPtr comm);
        [DllImport(Library, EntryPoint = "ncclGetErrorString")] public static extern IntPtr GetErrorString(int result);
    }

    /// <summary>cudaSetDevice from the CUDA runtime libtorch already mapped (its SONAME differs by CUDA version), so
    /// that ncclCommInitRank binds the communicator to this rank's GPU.</summary>
    static class CudaRuntime
    {
        delegate int SetDeviceFunction(int device);

        public static void SetDevice(int index)
        {
            string library = TorchNative.Mapped(name => name.StartsWith("libcudart.so", StringComparison.Ordinal)).FirstOrDefault()
                ?? throw new NcclException($"cuda:{index}: no CUDA runtime (libcudart) is loaded in this process, so the GPU cannot be selected for NCCL");
            var setDevice = Marshal.GetDelegateForFunctionPointer<SetDeviceFunction>(NativeLibrary.GetExport(NativeLibrary.Load(library), "cudaSetDevice"));
            int error = setDevice(index);
            if (error != 0) throw new NcclException($"cuda:{index}: cudaSetDevice failed with CUDA error {error}");
        }
    }
}
