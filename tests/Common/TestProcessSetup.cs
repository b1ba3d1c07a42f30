using System.Runtime.CompilerServices;

namespace ChineseClip.Tests;

static class TestProcessSetup
{
    // The test host cannot be re-executed with jemalloc preloaded; lower glibc's mmap threshold instead so the memory
    // libtorch frees goes back to the OS (see NativeAllocator).
    [ModuleInitializer]
    internal static void Init() => ChineseClip.Model.Runtime.NativeAllocator.UseGlibcThreshold();
}
