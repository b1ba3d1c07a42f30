// glibc malloc keeps the CPU memory libtorch frees, so a training process grows by gigabytes in a few steps (README,
// Platform notes). Processes that train use jemalloc when the system has it (it must be preloaded, so a launcher
// re-executes itself with LD_PRELOAD), otherwise they lower glibc's mmap threshold so large blocks return to the OS.
// jemalloc's default purges freed pages with MADV_DONTNEED soon after their lazy MADV_FREE phase ends (muzzy decay 0),
// so each training step faults the same gigabytes back in; page faults cost ~14 us each on the Firecracker VMs we
// measured. With muzzy_decay_ms:-1 those pages stay MADV_FREE'd: the kernel still takes them back under memory
// pressure, but a step that reuses them faults no more (docs/benchmarks.md has the measurement). A MALLOC_CONF the
// user sets is left as it is.
using System.Runtime.InteropServices;

namespace ChineseClip.Model.Runtime;

public static class NativeAllocator
{
    public const string JemallocPath = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    public const string DefaultJemallocConfig = "muzzy_decay_ms:-1";
    const string ReexecMarker = "CNCLIP_ALLOCATOR_CONFIGURED";
    const int MmapThresholdOption = -3; // M_MMAP_THRESHOLD in malloc.h
    const int MmapThresholdBytes = 131072;

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int param, int value);

    public static bool JemallocLoaded =>
        (Environment.GetEnvironmentVariable("LD_PRELOAD") ?? "").Contains("jemalloc", StringComparison.Ordinal);

    /// <summary>jemalloc's options in this process (MALLOC_CONF), or null when jemalloc is not loaded.</summary>
    public static string? JemallocConfig => JemallocLoaded ? Environment.GetEnvironmentVariable("MALLOC_CONF") ?? "" : null;

    [DllImport("libc", EntryPoint = "execve", SetLastError = true)]
    static extern int Execve(string path, string?[] argv, string?[] envp);

    /// <summary>
    /// For an entry point: if jemalloc is installed but not preloaded, replaces this process (execve: same PID, so
    /// signals, kill -9 and process supervisors reach the process that does the work) with the same program and
    /// LD_PRELOAD set, and does not return. Returns null when the process should go on (jemalloc is active, or absent
    /// or the exec failed, and the glibc threshold has been set instead). The int? result is kept for callers that
    /// return it as an exit code.
    /// </summary>
    public static int? ReexecWithJemallocIfAvailable(string[] args)
    {
        if (!OperatingSystem.IsLinux() || JemallocLoaded) return null;
        if (Environment.GetEnvironmentVariable(ReexecMarker) is null && File.Exists(JemallocPath) && Environment.ProcessPath is { } exe)
        {
            var argv = new List<string?> { exe };
            // A framework-dependent app started through `dotnet app.dll` re-runs the same way.
            string? entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
            if (Path.GetFileNameWithoutExtension(exe) == "dotnet" && entry is { Length: > 0 }) argv.Add(entry);
            argv.AddRange(args);
            argv.Add(null);
            var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "");
            string preload = environment.GetValueOrDefault("LD_PRELOAD", "");
            environment["LD_PRELOAD"] = preload.Length == 0 ? JemallocPath : JemallocPath + ":" + preload;
            environment.TryAdd("MALLOC_CONF", DefaultJemallocConfig);
            environment[ReexecMarker] = "1";
            var envp = environment.Select(kv => (string?)$"{kv.Key}={kv.Value}").Append(null).ToArray();
            Execve(exe, argv.ToArray(), envp); // returns only on failure
        }
        UseGlibcThreshold();
        return null;
    }

    /// <summary>In-process fallback (tests, hosts that cannot re-execute): large blocks go straight back to the OS.</summary>
    public static void UseGlibcThreshold()
    {
        if (OperatingSystem.IsLinux() && !JemallocLoaded) Mallopt(MmapThresholdOption, MmapThresholdBytes);
    }
}
