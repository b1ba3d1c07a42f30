// Bring-your-own libtorch. By default TorchSharp finds libtorch and LibTorchSharp in the NuGet packages copied beside
// the program. On a machine where the libtorch to use is another one (a PyTorch install's torch/lib with CUDA, say),
// the program is built with -p:TorchNative=external (no native assets) and told where both are:
//   CNCLIP_LIBTORCH_DIR    a libtorch lib folder (libc10.so, libtorch_cpu.so, libtorch.so, and the CUDA ones if any)
//   CNCLIP_LIBTORCHSHARP   a libLibTorchSharp.so built against that libtorch
// Both are loaded here, before the first torch call, and TorchSharp is pointed at the handles: without that, its own
// probing could map a second libtorch from the program folder next to this one.
using System.Reflection;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace ChineseClip.Model.Runtime;

/// <summary>A native library could not be used; the message is one line naming the variable, file or symbol.</summary>
public sealed class TorchNativeException(string message) : Exception(message);

public static class TorchNative
{
    public const string LibtorchDirVariable = "CNCLIP_LIBTORCH_DIR";
    public const string LibTorchSharpVariable = "CNCLIP_LIBTORCHSHARP";

    // Dependency order: each library's NEEDED entries are satisfied by the ones before it (matched by SONAME).
    static readonly string[] Required = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];
    static readonly string[] CudaParts = ["libc10_cuda.so", "libtorch_cuda.so"];

    const int RtldLazy = 0x1, RtldNow = 0x2, RtldNoLoad = 0x4, RtldGlobal = 0x100;

    /// <summary>The name TorchSharp loads its native library by; a file given in CNCLIP_LIBTORCHSHARP must carry it as
    /// its SONAME (see <see cref="Load"/>).</summary>
    public const string LibTorchSharpSoname = "libLibTorchSharp.so";

    [DllImport("libc", EntryPoint = "dlopen")]
    static extern IntPtr DlOpen(string path, int flags);

    [DllImport("libc", EntryPoint = "dlerror")]
    static extern IntPtr DlError();

    static readonly Dictionary<string, IntPtr> Loaded = new(StringComparer.Ordinal);
    static readonly Lock Gate = new();

    /// <summary>Where libtorch was taken from by <see cref="LoadFromEnvironment"/>; null when TorchSharp's own probing is used.</summary>
    public static string? ExternalDirectory { get; private set; }

    /// <summary>For entry points, before any torch call: loads the libraries the two variables name, or does nothing
    /// when neither is set. Throws <see cref="TorchNativeException"/> naming what is missing or incompatible.</summary>
    public static void LoadFromEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        MklCpuPath.ParseSetting(environment(MklCpuPath.Variable)); // its one-line error at start, not at the first model
        string? dir = NullIfEmpty(environment(LibtorchDirVariable)), sharp = NullIfEmpty(environment(LibTorchSharpVariable));
        if (dir is null && sharp is null) return;
        if (dir is null) throw new TorchNativeException($"{LibTorchSharpVariable} is set but {LibtorchDirVariable} is not: set both (the libtorch lib folder and a LibTorchSharp built against it)");
        if (sharp is null) throw new TorchNativeException($"{LibtorchDirVariable} is set but {LibTorchSharpVariable} is not: set both (the libtorch lib folder and a LibTorchSharp built against it)");
        Load(dir, sharp);
    }

    /// <summary>For a program's first lines: <see cref="LoadFromEnvironment"/>, its failure written as one line
    /// "<paramref name="program"/>: error: ..." on <paramref name="error"/>. False means: exit.</summary>
    public static bool TryLoadFromEnvironment(TextWriter error, string program)
    {
        try
        {
            LoadFromEnvironment();
            return true;
        }
        catch (TorchNativeException e)
        {
            error.WriteLine($"{program}: error: {e.Message}");
            return false;
        }
    }

    /// <summary>Loads libtorch from <paramref name="libtorchDir"/> and then <paramref name="libTorchSharpPath"/>; once per process.</summary>
    public static void Load(string libtorchDir, string libTorchSharpPath)
    {
        if (!OperatingSystem.IsLinux()) throw new TorchNativeException($"{LibtorchDirVariable}: bringing your own libtorch is supported on Linux only");
        lock (Gate)
        {
            string dir = Path.GetFullPath(libtorchDir);
            if (ExternalDirectory is { } done)
            {
                if (done != dir) throw new TorchNativeException($"{LibtorchDirVariable}={libtorchDir}: libtorch was already loaded from {done} in this process");
                return;
            }
            if (!Directory.Exists(dir)) throw new TorchNativeException($"{LibtorchDirVariable}={libtorchDir}: folder not found (expected a libtorch lib folder such as .../site-packages/torch/lib)");
            foreach (string name in Required)
                if (!File.Exists(Path.Combine(dir, name))) throw new TorchNativeException($"{LibtorchDirVariable}={libtorchDir}: {name} not found there (expected a libtorch lib folder such as .../site-packages/torch/lib)");
            if (!File.Exists(libTorchSharpPath)) throw new TorchNativeException($"{LibTorchSharpVariable}={libTorchSharpPath}: file not found (expected a libLibTorchSharp.so built against the libtorch in {dir})");
            RefuseBundledCopies(dir, Path.GetFullPath(libTorchSharpPath));

            Open(Path.Combine(dir, "libc10.so"), RtldLazy | RtldGlobal, LibtorchDirVariable);
            if (File.Exists(Path.Combine(dir, CudaParts[0]))) Open(Path.Combine(dir, CudaParts[0]), RtldLazy | RtldGlobal, LibtorchDirVariable);
            Open(Path.Combine(dir, "libtorch_cpu.so"), RtldLazy | RtldGlobal, LibtorchDirVariable);
            if (File.Exists(Path.Combine(dir, CudaParts[1]))) Open(Path.Combine(dir, CudaParts[1]), RtldLazy | RtldGlobal, LibtorchDirVariable);
            Open(Path.Combine(dir, "libtorch.so"), RtldLazy | RtldGlobal, LibtorchDirVariable);
            // Resolving every symbol now turns a LibTorchSharp built for another libtorch into an error here,
            // instead of a "symbol lookup error" that kills the process at some later call.
            Open(Path.GetFullPath(libTorchSharpPath), RtldNow, LibTorchSharpVariable, $" (built against another libtorch than {dir}?)");
            // TorchSharp's own start-up loads "LibTorchSharp" by bare name (NativeLibrary.TryLoad, which does not ask
            // our resolver), and the loader matches a bare name with an already loaded library only through its
            // SONAME: a file linked without one is mapped here but not found there, and TorchSharp's type initializer
            // fails later with nothing that names the cause (bench/gpu/RESULTS.md, call 6a).
            if (DlOpen(LibTorchSharpSoname, RtldLazy | RtldNoLoad) == IntPtr.Zero)
                throw new TorchNativeException($"{LibTorchSharpVariable}={libTorchSharpPath}: the file lacks the SONAME {LibTorchSharpSoname} that TorchSharp loads it by (link it with -Wl,-soname,{LibTorchSharpSoname})");

            foreach (var assembly in new[] { typeof(TorchSharp.torch).Assembly, typeof(TorchNative).Assembly })
                NativeLibrary.SetDllImportResolver(assembly, Resolve);
            ExternalDirectory = dir;
        }
    }

    // TorchSharp probes the program folder for torch_cpu and LibTorchSharp before anything else (NativeLibrary.TryLoad
    // by name does not ask the resolver); a copy found there would be mapped beside ours and libtorch aborts when its
    // second copy registers its operators. A build made with -p:TorchNative=external has no such copies.
    static void RefuseBundledCopies(string dir, string libTorchSharp)
    {
        string app = Path.GetFullPath(AppContext.BaseDirectory);
        string? bundled = new[] { "libtorch_cpu.so", "libLibTorchSharp.so" }.Select(name => Path.Combine(app, name))
            .FirstOrDefault(path => File.Exists(path) && path != Path.Combine(dir, Path.GetFileName(path)) && path != libTorchSharp);
        if (bundled is not null)
            throw new TorchNativeException($"{LibtorchDirVariable} is set but this program carries its own {Path.GetFileName(bundled)} ({bundled}): use a build made with -p:TorchNative=external");
    }

    static void Open(string path, int flags, string variable, string symbolHint = "")
    {
        DlError(); // binds the P/Invoke now: binding it after a failed dlopen would clear the message
        IntPtr handle = DlOpen(path, flags);
        if (handle == IntPtr.Zero)
        {
            string why = Marshal.PtrToStringUTF8(DlError()) ?? "unknown error";
            string hint = why.Contains("undefined symbol", StringComparison.Ordinal) ? symbolHint : "";
            throw new TorchNativeException($"{variable}: cannot load {path}: {why.ReplaceLineEndings(" ")}{hint}");
        }
        Loaded[LogicalName(Path.GetFileName(path))] = handle;
    }

    // TorchSharp asks for "torch_cpu", "torch_cuda" and "LibTorchSharp" ("libLibTorchSharp.so" maps to the same).
    static string LogicalName(string name)
    {
        if (name.EndsWith(".so", StringComparison.Ordinal)) name = name[..^3];
        return name.StartsWith("lib", StringComparison.Ordinal) ? name[3..] : name;
    }

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        Loaded.TryGetValue(LogicalName(name), out IntPtr handle) ? handle : IntPtr.Zero;

    /// <summary>The files of libtorch_cpu.so mapped into this process: one, when loading went right.</summary>
    public static IReadOnlyList<string> MappedLibtorch() => Mapped(name => name == "libtorch_cpu.so");

    /// <summary>Files mapped into this process (/proc/self/maps) whose file name passes <paramref name="match"/>.</summary>
    public static IReadOnlyList<string> Mapped(Func<string, bool> match) =>
        !File.Exists("/proc/self/maps") ? [] : File.ReadLines("/proc/self/maps")
            .Select(line => line.IndexOf('/') is int at and >= 0 ? line[at..] : "")
            .Where(path => path.Length > 0 && match(Path.GetFileName(path))).Distinct().ToList();

    static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Address of the tensor's first element, offset included (TorchSharp has no data_ptr); any dtype, any device.</summary>
    public static IntPtr DataPointer(Tensor t) => THSTensor_data(t.Handle);
}
