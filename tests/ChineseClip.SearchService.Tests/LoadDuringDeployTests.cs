using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Cli;
using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Search;
using Xunit.Abstractions;

namespace ChineseClip.SearchService.Tests;

/// <summary>`cnclip bench serve --deploy`: text searches from several clients while a deploy re-embeds the collection
/// and swaps the new version in. Short in CI (the fixture's six images, 8 clients, 6 s); tests/Benchmarks/
/// serve-during-deploy.sh sets CNCLIP_SERVE_SECONDS, CNCLIP_SERVE_CLIENTS and CNCLIP_SERVE_ITEMS (a collection of that
/// many small generated JPEGs) and prints the JSON line with the process's memory at the start and the end.</summary>
public class LoadDuringDeployTests(ITestOutputHelper output)
{
    const int GraceSeconds = 2;

    [Fact]
    public async Task Searches_during_a_deploy_all_succeed_and_the_new_version_serves_afterwards()
    {
        double seconds = double.TryParse(Environment.GetEnvironmentVariable("CNCLIP_SERVE_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out double s) ? s : 6;
        int clients = int.TryParse(Environment.GetEnvironmentVariable("CNCLIP_SERVE_CLIENTS"), out int c) ? c : 8;
        int items = int.TryParse(Environment.GetEnvironmentVariable("CNCLIP_SERVE_ITEMS"), out int n) ? n : 0;
        string checkpoint = Path.Combine(Directory.CreateTempSubdirectory("deploy-load").FullName, "best.pt");
        File.Copy(Tiny.Fixture("parity.pt"), checkpoint);
        var coordinator = new FakeCoordinator { Answer = WriteApiTests.Finished("sched-load", checkpoint) };
        await using var host = await CoordinatorHost.StartAsync(coordinator);
        string root = items > 0 ? GeneratedCollection(items) : Tiny.Collections("tiny");
        try
        {
            await using var service = await InProcessService.StartAsync($"--Search:Directory={root}", $"--Search:Coordinator={host.Address}",
                $"--Search:SwapGraceSeconds={GraceSeconds}");
            // CNCLIP_SERVE_ROUNDS: the load with its deploy again, on the same service (does a second deploy grow it again?).
            int rounds = int.TryParse(Environment.GetEnvironmentVariable("CNCLIP_SERVE_ROUNDS"), out int rr) && rr > 1 ? rr : 1;
            // CNCLIP_SERVE_WARMUP: seconds of the same load without a deploy first, so that the start is a service that
            // has been serving (its thread pool, connections and JIT-compiled code in place), as the one a deploy meets.
            var (rssCold, _) = Memory();
            if (double.TryParse(Environment.GetEnvironmentVariable("CNCLIP_SERVE_WARMUP"), System.Globalization.CultureInfo.InvariantCulture, out double warmup) && warmup > 0)
            {
                var warm = new StringWriter();
                int warmed = await Task.Run(() => CliApp.Run(
                    ["bench", "serve", "--url", service.Address, "--collection", "tiny", "--concurrency", $"{clients}",
                     "--seconds", warmup.ToString(System.Globalization.CultureInfo.InvariantCulture)],
                    new CliIO(TextReader.Null, warm, warm)));
                Assert.True(warmed == ExitCodes.Success, $"warm-up: exit {warmed}: {warm}");
            }
            var (rssBefore, managedBefore) = Memory();
            string line = "";
            for (int round = 1; round <= rounds; round++)
            {
                var stdout = new StringWriter();
                var stderr = new StringWriter();
                int code = await Task.Run(() => CliApp.Run(
                    ["bench", "serve", "--url", service.Address, "--collection", "tiny", "--concurrency", $"{clients}",
                     "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--deploy", "sched-load"],
                    new CliIO(TextReader.Null, stdout, stderr)));
                var (rssAfter, managedAfter) = Memory();
                // The replaced version stays loaded for GraceSeconds after the swap (for searches that took it before):
                // memory is flat when, once it is released, the process is back near where it started.
                await Task.Delay(TimeSpan.FromSeconds(GraceSeconds + 3));
                var (rssSettled, managedSettled) = Memory();
                line = stdout.ToString().Trim();
                output.WriteLine(line);
                // RSS of the whole test process (service, client, coordinator double); managed: the GC heap's committed bytes.
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    rss_cold_mb = rssCold >> 20, warmup_s = warmup, rss_start_mb = rssBefore >> 20, rss_end_mb = rssAfter >> 20, rss_after_grace_mb = rssSettled >> 20,
                    managed_start_mb = managedBefore >> 20, managed_end_mb = managedAfter >> 20, managed_after_grace_mb = managedSettled >> 20,
                    grace_s = GraceSeconds, round,
                }));
                Assert.True(code == ExitCodes.Success, $"exit {code}: {stderr}");
            }

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

    /// <summary>A folder with collection "tiny" of <paramref name="count"/> items: 64 x 48 JPEGs (256 different noise
    /// patterns, repeated under new ids) in a tsv, embedded with the fixture model.</summary>
    string GeneratedCollection(int count)
    {
        string root = Directory.CreateTempSubdirectory("search-service").FullName, tsv = Path.Combine(root, "generated_imgs.tsv");
        var random = new Random(14);
        var jpegs = Enumerable.Range(0, 256).Select(_ =>
        {
            using var image = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(64, 48);
            image.ProcessPixelRows(rows =>
            {
                for (int y = 0; y < rows.Height; y++)
                    foreach (ref var p in rows.GetRowSpan(y)) p = new((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
            });
            using var buffer = new MemoryStream();
            SixLabors.ImageSharp.ImageExtensions.SaveAsJpeg(image, buffer);
            return Convert.ToBase64String(buffer.ToArray()).Replace('+', '-').Replace('/', '_');
        }).ToArray();
        using (var writer = new StreamWriter(tsv))
            for (int i = 0; i < count; i++) writer.Write($"{i + 1}\t{jpegs[i % jpegs.Length]}\n");
        var clock = Stopwatch.StartNew();
        using var embedder = ClipEmbedder.Load(Tiny.Model());
        CollectionBuilder.Add(Path.Combine(root, "tiny"), "tiny", embedder, ImageSources.Open(tsv, null, _ => { }),
            new BuildOptions { Threads = 2 }, e => throw new InvalidOperationException(e));
        output.WriteLine(JsonSerializer.Serialize(new { collection_items = count, build_s = Math.Round(clock.Elapsed.TotalSeconds, 1) }));
        return root;
    }

    static (long Rss, long Managed) Memory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        return (self.WorkingSet64, GC.GetGCMemoryInfo().TotalCommittedBytes);
    }
}
