// glibc malloc keeps the CPU memory libtorch frees (ViT-B/16 training grew 4.5 -> 16.7 GB RSS in 20 steps, see
// platform-notes.md). Processes that train use jemalloc when the system has it (it must be preloaded, so a launcher
// re-executes itself with LD_PRELOAD), otherwise they lower glibc's mmap threshold so large blocks return to the OS.
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ChineseClip.Model.Runtime;

public static class NativeAllocator
{
    public const string JemallocPath = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    const string ReexecMarker = "CNCLIP_ALLOCATOR_CONFIGURED";
    const int MmapThresholdOption = -3; // M_MMAP_THRESHOLD in malloc.h
    const int MmapThresholdBytes = 131072;

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int param, int value);

    public static bool JemallocLoaded =>
        (Environment.GetEnvironmentVariable("LD_PRELOAD") ?? "").Contains("jemalloc", StringComparison.Ordinal);

    /// <summary>
    /// For an entry point: if jemalloc is installed but not preloaded, runs this same program again with
    /// LD_PRELOAD set and returns its exit code; returns null when the current process should go on (jemalloc is
    /// active, or absent and the glibc threshold has been set instead).
    /// </summary>
    public static int? ReexecWithJemallocIfAvailable(string[] args)
    {
        if (!OperatingSystem.IsLinux() || JemallocLoaded) return null;
        if (Environment.GetEnvironmentVariable(ReexecMarker) is null && File.Exists(JemallocPath) && Environment.ProcessPath is { } exe)
        {
            var start = new ProcessStartInfo(exe) { UseShellExecute = false };
            // A framework-dependent app started through `dotnet app.dll` re-runs the same way.
            string? entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
            if (Path.GetFileNameWithoutExtension(exe) == "dotnet" && entry is { Length: > 0 }) start.ArgumentList.Add(entry);
            foreach (string a in args) start.ArgumentList.Add(a);
            string preload = Environment.GetEnvironmentVariable("LD_PRELOAD") ?? "";
            start.Environment["LD_PRELOAD"] = preload.Length == 0 ? JemallocPath : JemallocPath + ":" + preload;
            start.Environment[ReexecMarker] = "1";
            // The child shares the terminal: Ctrl+C reaches it directly; this process only waits for it.
            Console.CancelKeyPress += (_, e) => e.Cancel = true;
            using var child = Process.Start(start)!;
            child.WaitForExit();
            return child.ExitCode;
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
