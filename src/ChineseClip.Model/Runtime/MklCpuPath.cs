// libtorch's CPU matrix products go to the oneMKL linked into libtorch_cpu.so (2024.2 in libtorch 2.10). MKL takes its
// AVX-512 kernels only on CPUs whose cpuid vendor is "GenuineIntel": on an AMD EPYC with AVX-512 (Zen 5) it runs none
// of its Intel branches (its branch query answers AUTO) and its fp32 products reach ~83 GFLOP/s per core, where its
// AVX-512 branch reaches ~180 on the same core (docs/benchmarks.md, tests/Benchmarks/gemm-vs-python.sh). MKL
// asks mkl_serv_intel_cpu_true(), which keeps its cpuid answer in a static int (-1 until first asked). On a CPU that is
// not Intel's but has AVX-512F, Apply sets that int to 1 before MKL first asks, so MKL chooses among its Intel branches
// by the CPU's feature bits as it does on Intel. Numbers stay fp32: only the kernel, and so the order of additions,
// changes, as it does between any two CPUs. MKL has no switch for this any more (MKL_DEBUG_CPU_TYPE is gone), and
// preloading a library that defines the function would need a C compiler on the user's machine, so the int is set in
// place. CNCLIP_MKL_INTEL_PATH=0 turns it off, =1 forces it (any CPU), auto (default) is the rule above.
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace ChineseClip.Model.Runtime;

public static class MklCpuPath
{
    public const string Variable = "CNCLIP_MKL_INTEL_PATH";
    const string Function = "mkl_serv_intel_cpu_true";
    const int RtldLazy = 0x1, RtldNoLoad = 0x4;

    [DllImport("libc", EntryPoint = "dlopen")]
    static extern IntPtr DlOpen(string path, int flags);

    [DllImport("libc", EntryPoint = "dlsym")]
    static extern IntPtr DlSym(IntPtr handle, string symbol);

    static readonly Lock Gate = new();
    static string? _status;

    /// <summary>What <see cref="Apply"/> did in this process, one line for logs and benchmark JSON; null before it ran.</summary>
    public static string? Status => _status;

    /// <summary>The CPU's cpuid vendor string ("GenuineIntel", "AuthenticAMD", ...); empty off x86.</summary>
    public static string CpuVendor()
    {
        if (!X86Base.IsSupported) return "";
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<int> words = [ebx, edx, ecx];
        return System.Text.Encoding.ASCII.GetString(MemoryMarshal.AsBytes(words));
    }

    /// <summary>
    /// Once per process, before the first matrix product (<see cref="TorchCpu.SetThreads"/> and the ClipModel constructor call it):
    /// decides from <see cref="Variable"/> and the CPU, and sets MKL's answer where the rule says so. Loads libtorch if
    /// it is not loaded yet. Never throws for a libtorch whose MKL looks different: the status says it was not applied.
    /// Throws <see cref="TorchNativeException"/> for a value of the variable other than auto, 0 or 1.
    /// </summary>
    public static string Apply()
    {
        lock (Gate)
        {
            if (_status is not null) return _status;
            bool? setting = ParseSetting(Environment.GetEnvironmentVariable(Variable));
            bool force = setting == true;
            string vendor = CpuVendor();
            if (setting == false) return _status = $"MKL chooses its own kernels ({Variable}=0)";
            if (!force && vendor == "GenuineIntel") return _status = "MKL chooses its own kernels (Intel CPU)";
            if (!force && !Avx512F.IsSupported) return _status = $"MKL chooses its own kernels ({vendor}, no AVX-512)";
            _ = TorchSharp.torch.get_num_threads(); // loads libtorch in package mode (TorchNative loaded it in external mode)
            if (SetAnswer(1, out int previous) is { } why)
                return _status = $"MKL chooses its own kernels ({vendor}; its Intel path could not be set: {why})";
            // MKL keeps the kernels it chose at its first product (measured: an answer set after one product changes nothing).
            if (previous >= 0 && previous != 1)
                return _status = $"MKL chooses its own kernels ({vendor}; it had chosen before its Intel path was set)";
            return _status = $"MKL takes its Intel kernels ({vendor}{(force ? $", {Variable}=1" : ", AVX-512")})";
        }
    }

    /// <summary>The variable's value: null for auto (unset, empty or "auto"), true for 1, false for 0; anything else
    /// throws <see cref="TorchNativeException"/> naming it. Entry points check it at start (TorchNative.LoadFromEnvironment).</summary>
    public static bool? ParseSetting(string? value) => value?.Trim() switch
    {
        null or "" or "auto" => null,
        "1" => true,
        "0" => false,
        _ => throw new TorchNativeException($"{Variable}={value}: expected auto, 0 or 1"),
    };

    /// <summary>The code branch MKL takes on this CPU, named as mkl_cbwr.h names its MKL_CBWR_* values ("AVX512_E1",
    /// "AVX2"; "AUTO" where MKL runs none of its Intel branches); null when libtorch is not loaded or carries no MKL.
    /// Asking makes MKL choose, so call it after <see cref="Apply"/>.</summary>
    public static unsafe string? Branch()
    {
        IntPtr library = DlOpen("libtorch_cpu.so", RtldLazy | RtldNoLoad);
        IntPtr function = library == IntPtr.Zero ? IntPtr.Zero : DlSym(library, "mkl_serv_cbwr_get_auto_branch");
        if (function == IntPtr.Zero) return null;
        int branch = ((delegate* unmanaged<int>)function)();
        return branch switch
        {
            2 => "AUTO", 3 => "COMPATIBLE", 4 => "SSE2", 6 => "SSSE3", 7 => "SSE4_1", 8 => "SSE4_2", 9 => "AVX", 10 => "AVX2",
            11 => "AVX512_MIC", 12 => "AVX512", 13 => "AVX512_MIC_E1", 14 => "AVX512_E1",
            _ => branch.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    /// <summary>Sets the int MKL's <c>mkl_serv_intel_cpu_true</c> returns from now on; <paramref name="previous"/> gets the
    /// value before (-1: not asked yet). Returns null when set, else why not. Internal for the test, which sets a value
    /// that no CPU gives and calls the function to see it come back.</summary>
    internal static unsafe string? SetAnswer(int value, out int previous)
    {
        previous = int.MinValue;
        IntPtr library = DlOpen("libtorch_cpu.so", RtldLazy | RtldNoLoad);
        if (library == IntPtr.Zero) return "libtorch_cpu.so is not loaded";
        IntPtr function = DlSym(library, Function);
        if (function == IntPtr.Zero) return $"libtorch_cpu.so exports no {Function}";
        // The function starts with `mov eax, [rip + disp32]` (8B 05 disp32), which loads the cached answer, then
        // `test eax, eax` (85 C0). One fixed instruction form is all there is to decode, so it is matched byte for byte
        // here instead of taking an x86 disassembler as a dependency; any other code means another MKL, and nothing is
        // written.
        byte* code = (byte*)function;
        if (code[0] != 0x8B || code[1] != 0x05 || code[6] != 0x85 || code[7] != 0xC0)
            return $"{Function} does not begin as expected (another MKL build?)";
        int* cached = (int*)(code + 6 + *(int*)(code + 2));
        if (!WritableMappingOf((IntPtr)cached)) return $"{Function}'s cached answer is not in a writable mapping of libtorch_cpu.so";
        previous = Volatile.Read(ref *cached);
        Volatile.Write(ref *cached, value);
        int seen = ((delegate* unmanaged<int>)function)();
        return seen == value ? null : $"{Function} returned {seen} after its answer was set to {value}";
    }

    // The address must lie in a writable private mapping of libtorch_cpu.so itself (its .data), read from /proc/self/maps.
    static bool WritableMappingOf(IntPtr address)
    {
        ulong at = (ulong)address;
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            // start-end perms offset dev inode path
            string[] parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 6 || Path.GetFileName(parts[5].Trim()) != "libtorch_cpu.so") continue;
            string[] range = parts[0].Split('-');
            ulong start = Convert.ToUInt64(range[0], 16), end = Convert.ToUInt64(range[1], 16);
            if (at >= start && at + sizeof(int) <= end) return parts[1].StartsWith("rw", StringComparison.Ordinal);
        }
        return false;
    }
}
