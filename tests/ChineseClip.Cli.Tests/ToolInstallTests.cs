using System.Diagnostics;

namespace ChineseClip.Cli.Tests;

/// <summary>README.md's install line, run as written except for where it puts the package and the tool: the packed
/// cnclip must start and load libtorch from its own package.</summary>
public sealed class ToolInstallTests
{
    static readonly string RepoRoot = FindRepoRoot();

    [Fact]
    public void TheReadmeInstallLineGivesACnclipThatRunsAndLoadsLibtorch()
    {
        string line = File.ReadLines(Path.Combine(RepoRoot, "README.md")).Select(l => l.Trim())
            .Single(l => l.StartsWith("dotnet pack src/ChineseClip.Cli ", StringComparison.Ordinal));
        Assert.Contains(" --global ", line);
        Assert.Contains(" .tools ", line + " ");
        var temp = Directory.CreateTempSubdirectory("cnclip-tool-");
        try
        {
            string packages = Path.Combine(temp.FullName, "packages"), tools = Path.Combine(temp.FullName, "tools");
            string command = (line + " ").Replace(" --global ", $" --tool-path '{tools}' ").Replace(" .tools ", $" '{packages}' ").TrimEnd();
            var install = Run("bash", ["-c", command], TimeSpan.FromMinutes(8));
            Assert.True(install.ExitCode == 0, $"{command}\n{install.Out}\n{install.Error}");
            // The package went to the temp folder, not the repository's .tools.
            Assert.Single(Directory.GetFiles(packages, "ChineseClip.Cli.*.nupkg"));

            string cnclip = Path.Combine(tools, "cnclip");
            var help = Run(cnclip, ["--help"], TimeSpan.FromMinutes(1));
            Assert.Equal(0, help.ExitCode);
            foreach (string verb in new[] { "train", "extract-features", "index", "convert-private-data", "download-model", "bench" })
                Assert.Contains(verb, help.Out);

            var step = Run(cnclip, ["bench", "train-step", "--arch", "tests/Benchmarks/small-224.json", "--batch", "1", "--steps", "1", "--threads", "1"],
                TimeSpan.FromMinutes(3));
            Assert.True(step.ExitCode == 0, step.Error);
            Assert.Contains("\"ms_per_step_median\"", step.Out);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    static CliRunner.Result Run(string file, string[] args, TimeSpan limit)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = RepoRoot };
        foreach (string a in args) start.ArgumentList.Add(a);
        // The test host's MSBuild variables would steer the nested dotnet pack; a build server or reused node would
        // outlive it holding the output pipes open.
        foreach (string name in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly" })
            start.Environment.Remove(name);
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)}: still running after {limit}");
        }
        process.WaitForExit();
        return new CliRunner.Result(process.ExitCode, output.Result, error.Result);
    }

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir.FullName, "ChineseClip.sln")))
            dir = dir.Parent ?? throw new InvalidOperationException("no ChineseClip.sln above the tests");
        return dir.FullName;
    }
}
