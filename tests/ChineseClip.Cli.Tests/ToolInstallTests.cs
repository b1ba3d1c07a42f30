using System.Diagnostics;

namespace ChineseClip.Cli.Tests;

/// <summary>README's install line, run as written except that the package and the tool go to temporary folders
/// (--tool-path instead of --global): the packed tool starts, lists its verbs and runs a command that loads libtorch.</summary>
public class ToolInstallTests
{
    static readonly string RepoRoot = FindRepoRoot();

    static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ChineseClip.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("ChineseClip.sln not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void The_readme_install_line_installs_a_cnclip_that_runs()
    {
        string readme = File.ReadAllText(Path.Combine(RepoRoot, "README.md"));
        string line = readme.Split('\n').Select(l => l.Trim())
            .Single(l => l.StartsWith("dotnet pack src/ChineseClip.Cli", StringComparison.Ordinal) && l.Contains("dotnet tool"));
        Assert.Contains("--global", line);
        Assert.Contains(" .tools", line);
        string work = Directory.CreateTempSubdirectory("cnclip-tool").FullName;
        try
        {
            string feed = Path.Combine(work, "feed"), tools = Path.Combine(work, "tools");
            string command = line.Replace("--global", $"--tool-path {tools}").Replace(" .tools", $" {feed}");
            var install = Run("bash", ["-c", command], RepoRoot, TimeSpan.FromMinutes(10));
            Assert.True(install.Code == 0, $"{command}\n{install.Output}");

            string cnclip = Path.Combine(tools, "cnclip");
            var help = Run(cnclip, ["--help"], work, TimeSpan.FromMinutes(1));
            Assert.Equal(0, help.Code);
            foreach (string verb in new[] { "train", "submit", "status", "index", "search", "export-onnx", "bench" })
                Assert.Contains(verb, help.Output);

            var step = Run(cnclip, ["bench", "train-step", "--arch", Path.Combine(RepoRoot, "tests", "Benchmarks", "small-224.json"),
                "--batch", "1", "--steps", "1", "--threads", "1"], work, TimeSpan.FromMinutes(2));
            Assert.True(step.Code == 0, step.Output);
            Assert.Contains("\"ms_per_step_median\"", step.Output);
        }
        finally { Directory.Delete(work, true); }
    }

    static (int Code, string Output) Run(string file, string[] args, string directory, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"no exit within {timeout}");
        }
        return (process.ExitCode, output.Result + error.Result);
    }
}
