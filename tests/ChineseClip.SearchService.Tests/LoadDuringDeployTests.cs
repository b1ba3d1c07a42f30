using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Cli;
using ChineseClip.Cli.Tests.Cluster;
using Xunit.Abstractions;

namespace ChineseClip.SearchService.Tests;

/// <summary>`cnclip bench serve --deploy`: text searches from several clients while a deploy re-embeds the collection
/// and swaps the new version in. Short in CI; tests/Benchmarks/serve-during-deploy.sh runs it for 60 s
/// (CNCLIP_SERVE_SECONDS) and prints the JSON line with the service process's memory at the start and the end.</summary>
public class LoadDuringDeployTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Searches_during_a_deploy_all_succeed_and_the_new_version_serves_afterwards()
    {
        double seconds = double.TryParse(Environment.GetEnvironmentVariable("CNCLIP_SERVE_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out double s) ? s : 6;
        string checkpoint = Path.Combine(Directory.CreateTempSubdirectory("deploy-load").FullName, "best.pt");
        File.Copy(Tiny.Fixture("parity.pt"), checkpoint);
        var coordinator = new FakeCoordinator { Answer = WriteApiTests.Finished("sched-load", checkpoint) };
        await using var host = await CoordinatorHost.StartAsync(coordinator);
        string root = Tiny.Collections("tiny");
        try
        {
            await using var service = await InProcessService.StartAsync($"--Search:Directory={root}", $"--Search:Coordinator={host.Address}");
            long rssBefore = Rss();
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = await Task.Run(() => CliApp.Run(
                ["bench", "serve", "--url", service.Address, "--collection", "tiny", "--concurrency", "8",
                 "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--deploy", "sched-load"],
                new CliIO(TextReader.Null, stdout, stderr)));
            long rssAfter = Rss();
            string line = stdout.ToString().Trim();
            output.WriteLine(line);
            output.WriteLine(JsonSerializer.Serialize(new { rss_start_mb = rssBefore >> 20, rss_end_mb = rssAfter >> 20 }));
            Assert.True(code == ExitCodes.Success, $"exit {code}: {stderr}");

            var result = JsonDocument.Parse(line).RootElement;
            Assert.Equal(0, result.GetProperty("errors").GetInt32());
            Assert.True(result.GetProperty("requests").GetInt32() > 8, line);
            var deploy = result.GetProperty("deploy");
            Assert.Equal("succeeded", deploy.GetProperty("state").GetString());
            Assert.Equal(deploy.GetProperty("version_before").GetInt32() + 1, deploy.GetProperty("version_after").GetInt32());
            Assert.True(deploy.GetProperty("started_at_s").GetDouble() < seconds, "the deploy started after the load");

            var after = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = "狗", k = 6 }));
            Assert.Equal(6, after.GetProperty("results").GetArrayLength());
            Assert.Equal("sched-load", after.GetProperty("model").GetProperty("schedule").GetString());
        }
        finally { Directory.Delete(root, true); }
    }

    static long Rss()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }
}
