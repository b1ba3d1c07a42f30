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
}
