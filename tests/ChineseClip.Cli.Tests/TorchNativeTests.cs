// Bring-your-own libtorch (src/ChineseClip.Model/Runtime/TorchNative.cs), tried on real cnclip processes: the
// variables are read at process start, before the first torch call, and a process maps libtorch once.
using System.Diagnostics;
using ChineseClip.Cli.Launching;
using ChineseClip.Model.Runtime;

namespace ChineseClip.Cli.Tests;

public class TorchNativeTests
{
    static readonly string NuGetLibtorch = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile),
        ".nuget", "packages", "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native");

    static Dictionary<string, string> Variables(string libtorchDir, string libTorchSharp) => new()
    {
        [TorchNative.LibtorchDirVariable] = libtorchDir, [TorchNative.LibTorchSharpVariable] = libTorchSharp,
    };

    static void AssertOneLineError(CliRunner.Result r, string expected)
    {
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        string line = Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("cnclip: error: ", line);
        Assert.Contains(expected, line);
    }

    [Fact]
    public void A_missing_libtorch_folder_is_named_before_any_torch_call()
    {
        var r = CliRunner.RunProcess(LocalRanks.SelfStartInfo(), Variables("/nonexistent/torch/lib", "/nonexistent/libLibTorchSharp.so"), "--version");
        AssertOneLineError(r, "CNCLIP_LIBTORCH_DIR=/nonexistent/torch/lib: folder not found");
    }

    [Fact]
    public void One_variable_without_the_other_is_refused()
    {
        var r = CliRunner.RunProcess(LocalRanks.SelfStartInfo(), new Dictionary<string, string> { [TorchNative.LibtorchDirVariable] = NuGetLibtorch }, "--version");
        AssertOneLineError(r, "CNCLIP_LIBTORCH_DIR is set but CNCLIP_LIBTORCHSHARP is not");
    }

    [Fact]
    public void A_program_that_carries_its_own_libtorch_refuses_another()
    {
        var r = CliRunner.RunProcess(LocalRanks.SelfStartInfo(), Variables(NuGetLibtorch, Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so")), "--version");
        AssertOneLineError(r, "carries its own libtorch_cpu.so");
    }

    [Fact]
    public void A_libtorchsharp_the_loader_refuses_is_named_with_the_loader_reason()
    {
        using var app = ExternalApp.Create();
        string notElf = Path.Combine(app.Root, "libLibTorchSharp.so");
        File.WriteAllText(notElf, "not a shared library");
        var r = CliRunner.RunProcess(app.StartInfo(), Variables(NuGetLibtorch, notElf), "--version");
        AssertOneLineError(r, $"CNCLIP_LIBTORCHSHARP: cannot load {notElf}: ");
    }

    // TorchSharp finds its native library by the name libLibTorchSharp.so, which matches a library loaded from a path
    // only through its SONAME. A LibTorchSharp linked without one (the NuGet file with its DT_SONAME entry taken out)
    // is refused at start-up in one line, naming the linker option.
    [Fact]
    public void A_libtorchsharp_without_its_soname_is_refused_naming_the_linker_option()
    {
        using var app = ExternalApp.Create();
        string withoutSoname = Path.Combine(app.Root, "native", "libLibTorchSharp-nosoname.so");
        Assert.Equal(TorchNative.LibTorchSharpSoname, Elf.Soname(app.LibTorchSharp));
        Elf.CopyWithoutSoname(app.LibTorchSharp, withoutSoname);
        Assert.Null(Elf.Soname(withoutSoname));
        var r = CliRunner.RunProcess(app.StartInfo(), Variables(NuGetLibtorch, withoutSoname), "--version");
        AssertOneLineError(r, $"CNCLIP_LIBTORCHSHARP={withoutSoname}: the file lacks the SONAME libLibTorchSharp.so that TorchSharp loads it by (link it with -Wl,-soname,libLibTorchSharp.so)");
    }

    [Fact]
    public void With_the_nuget_libtorch_from_the_environment_features_match_the_official_ones()
    {
        using var app = ExternalApp.Create();
        string data = ExtractFeaturesCommandTests.DataDir(), output = Path.Combine(data, "out");
        var r = CliRunner.RunProcess(app.StartInfo(), Variables(NuGetLibtorch, app.LibTorchSharp),
            "extract-features", "--checkpoint", ExtractFeaturesCommandTests.Fixture("parity.pt"), "--arch", ExtractFeaturesCommandTests.Fixture("arch.json"),
            "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", data, "--split", "test", "--output-dir", output);
        Assert.True(r.ExitCode == 0, r.Error);
        ExtractFeaturesCommandTests.AssertMatchOfficialFeatures(output);
        Directory.Delete(data, true);
    }

    /// <summary>This test project's cnclip as a -p:TorchNative=external build has it: the same managed files, no
    /// libtorch or LibTorchSharp beside them. The build's LibTorchSharp (the NuGet file with the GLIBCXX fix) is put
    /// in a folder of its own for CNCLIP_LIBTORCHSHARP.</summary>
    sealed class ExternalApp : IDisposable
    {
        public required string Root { get; init; }
        string AppDir => Path.Combine(Root, "app");
        public string LibTorchSharp => Path.Combine(Root, "native", "libLibTorchSharp.so");

        public static ExternalApp Create()
        {
            var app = new ExternalApp { Root = Directory.CreateTempSubdirectory("cnclip-external").FullName };
            Directory.CreateDirectory(app.AppDir);
            Directory.CreateDirectory(Path.GetDirectoryName(app.LibTorchSharp)!);
            foreach (string file in Directory.GetFiles(AppContext.BaseDirectory))
            {
                string name = Path.GetFileName(file), target = Path.Combine(app.AppDir, name);
                if (name == "libLibTorchSharp.so") File.Copy(file, app.LibTorchSharp);
                else if (name.StartsWith("libtorch", StringComparison.Ordinal) || name.StartsWith("libc10", StringComparison.Ordinal)
                    || name.StartsWith("libgomp", StringComparison.Ordinal)) continue;
                // The apphost and cnclip.dll are copied, not linked: the host takes the program folder from their real paths.
                else if (name is "cnclip" or "cnclip.dll" || name.EndsWith(".json", StringComparison.Ordinal)) File.Copy(file, target);
                else File.CreateSymbolicLink(target, file);
            }
            foreach (string dir in Directory.GetDirectories(AppContext.BaseDirectory))
                Directory.CreateSymbolicLink(Path.Combine(app.AppDir, Path.GetFileName(dir)), dir);
            return app;
        }

        public ProcessStartInfo StartInfo() => new(Path.Combine(AppDir, "cnclip"));

        public void Dispose() => Directory.Delete(Root, recursive: true);
    }

    /// <summary>The dynamic section of a little-endian ELF64 shared library (hand-written: a few lines, where a
    /// tool such as patchelf may be absent from a fresh CI machine).</summary>
    static class Elf
    {
        const uint ShtDynamic = 6;
        const long DtNull = 0, DtSoname = 14;

        // (file offset of the dynamic entries, their count, file offset of the string table they refer to)
        static (long Offset, int Count, long Strings) Dynamic(byte[] elf)
        {
            Assert.True(elf.Length > 64 && elf[0] == 0x7f && elf[1] == 'E' && elf[2] == 'L' && elf[3] == 'F' && elf[4] == 2 && elf[5] == 1, "not a little-endian ELF64 file");
            long shoff = BitConverter.ToInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                int sh = (int)(shoff + (long)i * shentsize);
                if (BitConverter.ToUInt32(elf, sh + 4) != ShtDynamic) continue;
                int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
                long strings = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
                return (BitConverter.ToInt64(elf, sh + 0x18), (int)(BitConverter.ToInt64(elf, sh + 0x20) / 16), strings);
            }
            throw new InvalidDataException("no dynamic section");
        }

        public static string? Soname(string path)
        {
            byte[] elf = File.ReadAllBytes(path);
            var (offset, count, strings) = Dynamic(elf);
            for (int i = 0; i < count; i++)
            {
                long tag = BitConverter.ToInt64(elf, (int)(offset + 16L * i));
                if (tag == DtNull) break;
                if (tag != DtSoname) continue;
                int start = (int)(strings + BitConverter.ToInt64(elf, (int)(offset + 16L * i + 8))), end = start;
                while (elf[end] != 0) end++;
                return System.Text.Encoding.ASCII.GetString(elf, start, end - start);
            }
            return null;
        }

        /// <summary>Writes <paramref name="target"/>: the library without its DT_SONAME entry (the entries after it
        /// move up one slot; the freed last slot is another DT_NULL).</summary>
        public static void CopyWithoutSoname(string source, string target)
        {
            byte[] elf = File.ReadAllBytes(source);
            var (offset, count, _) = Dynamic(elf);
            int at = Enumerable.Range(0, count).First(i => BitConverter.ToInt64(elf, (int)(offset + 16L * i)) == DtSoname);
            Array.Copy(elf, offset + 16L * (at + 1), elf, offset + 16L * at, 16L * (count - at - 1));
            Array.Clear(elf, (int)(offset + 16L * (count - 1)), 16);
            File.WriteAllBytes(target, elf);
        }
    }
}
