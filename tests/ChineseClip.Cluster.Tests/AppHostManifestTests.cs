using System.Diagnostics;
using System.Text.Json;

namespace ChineseClip.Cluster.Tests;

/// <summary>The AppHost's declarations, read from the manifest it publishes (`--publisher manifest`, no DCP, nothing
/// started): what each Redis mode keeps across restarts, and settings refused by name. The container mode cannot run
/// here (no container engine), so the manifest is where its persistence is checked.</summary>
public sealed class AppHostManifestTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("cnclip-manifest").FullName;

    (int ExitCode, string Output, JsonElement? Manifest) Publish(params string[] settings)
    {
        string path = Path.Combine(_dir, "aspire-manifest.json");
        File.Delete(path);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        string[] arguments = ["run", "--no-build", "--project", Path.Combine(ServiceProcesses.RepositoryRoot(), "ChineseClip.AppHost"), "--",
            "--publisher", "manifest", "--output-path", path, "Cluster:Demo=false", $"Cluster:RunsDirectory={Path.Combine(_dir, "runs")}", .. settings];
        foreach (string a in arguments)
            start.ArgumentList.Add(a);
        using var apphost = Process.Start(start)!;
        var error = apphost.StandardError.ReadToEndAsync();
        string output = apphost.StandardOutput.ReadToEnd();
        Assert.True(apphost.WaitForExit(TimeSpan.FromMinutes(2)), "the manifest publisher did not end");
        JsonElement? manifest = File.Exists(path) ? JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("resources") : null;
        return (apphost.ExitCode, output + error.Result, manifest);
    }

    [Fact]
    public void The_redis_container_keeps_its_data_in_a_volume_with_snapshots_and_the_append_only_file()
    {
        var (code, output, manifest) = Publish("Cluster:Redis=container");
        Assert.True(code == 0, output);
        var redis = manifest!.Value.GetProperty("redis");
        Assert.Equal("container.v0", redis.GetProperty("type").GetString());
        var volume = Assert.Single(redis.GetProperty("volumes").EnumerateArray());
        Assert.Equal("/data", volume.GetProperty("target").GetString());
        Assert.False(volume.GetProperty("readOnly").GetBoolean());
        // redis-server runs through `sh -c` with its options in one string: persistence must be in that string.
        string[] args = redis.GetProperty("args").EnumerateArray().Select(a => a.GetString()!).ToArray();
        Assert.Equal("-c", args[0]);
        Assert.Equal(2, args.Length);
        Assert.StartsWith("redis-server ", args[1]);
        Assert.Contains("--save 10 1", args[1]);
        Assert.Contains("--appendonly yes", args[1]);
    }

    [Fact]
    public void The_embedded_garnet_server_keeps_its_log_and_checkpoints_in_the_runs_folder_and_recovers_them()
    {
        var (code, output, manifest) = Publish("Cluster:Redis=garnet");
        Assert.True(code == 0, output);
        string args = string.Join(' ', manifest!.Value.GetProperty("redis").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Contains("--aof", args);
        Assert.Contains($"--checkpointdir {Path.Combine(_dir, "runs", ".garnet")}", args);
        Assert.Contains("--recover", args);
        Assert.Contains("--device-type RandomAccess", args);
    }

    [Fact]
    public void Redis_server_keeps_its_append_only_file_in_the_runs_folder()
    {
        var (code, output, manifest) = Publish("Cluster:Redis=executable");
        Assert.True(code == 0, output);
        string args = string.Join(' ', manifest!.Value.GetProperty("redis").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Contains("--appendonly yes", args);
        Assert.Contains($"--dir {Path.Combine(_dir, "runs", ".redis")}", args);
    }

    [Theory]
    [InlineData("Cluster:Workers=-1", "ChineseClip.AppHost: error: Cluster:Workers: -1 is negative")]
    [InlineData("Cluster:Workers=two", "ChineseClip.AppHost: error: Failed to convert configuration value 'two' at 'Cluster:Workers'")]
    [InlineData("Cluster:Redis=mongo", "(Cluster:Redis is one of auto, container, executable, garnet)")]
    [InlineData("Cluster:Worker=3", "ChineseClip.AppHost: error: Cluster:Worker: not a setting (the settings: Workers, ")]
    public void A_bad_setting_stops_the_apphost_with_one_line_naming_it(string setting, string expected)
    {
        var (code, output, _) = Publish(setting);
        Assert.Equal(2, code);
        string error = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("error:"));
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", output);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
