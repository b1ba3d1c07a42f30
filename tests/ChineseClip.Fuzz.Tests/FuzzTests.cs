using System.Text;
using System.Text.Json;
using ChineseClip.Fuzz.Tests.Targets;

namespace ChineseClip.Fuzz.Tests;

/// <summary>Every kind of input the project reads, fuzzed from a fixed seed: no case crashes, hangs, or fails with
/// anything but its library's typed error or the CLI's one-line exit 2 naming the problem, and a bad record costs
/// only itself.</summary>
public class FuzzTests
{
    [Fact]
    public void Every_mutated_torch_checkpoint_loads_or_is_refused_as_a_checkpoint_format_error() => Fuzz.AssertNoBugs(new TorchCheckpointTarget(), 80);

    [Fact]
    public void Every_mutated_safetensors_file_loads_or_is_refused_as_a_checkpoint_format_error() => Fuzz.AssertNoBugs(new SafetensorsTarget(), 80);

    [Fact]
    public void Every_mutated_image_of_every_format_decodes_or_is_refused_as_an_invalid_image() => Fuzz.AssertNoBugs(new ImageTarget(), 150);

    [Fact]
    public void A_mutated_tsv_or_jsonl_record_costs_only_its_own_line() => Fuzz.AssertNoBugs(new DataRecordsTarget(), 60);

    [Fact]
    public void A_mutated_lmdb_record_costs_only_its_own_pair() => Fuzz.AssertNoBugs(new LmdbRecordsTarget(), 40);

    [Fact]
    public void Every_mutated_train_config_loads_or_is_refused_naming_the_file_and_key() => Fuzz.AssertNoBugs(new TrainConfigTarget(), 100);

    [Fact]
    public void Every_mutated_schedule_is_read_or_refused_naming_the_file_or_field() => Fuzz.AssertNoBugs(new ScheduleTarget(), 100);

    [Fact]
    public async Task Every_mutated_search_api_body_is_answered_or_refused_with_a_4xx_and_the_collection_answers_as_before()
    {
        string root = SearchService.Tests.Tiny.Collections("tiny", "writes");
        try
        {
            await using var service = await SearchService.Tests.InProcessService.StartAsync($"--Search:Directory={root}", "--Search:MaxRequestBytes=2000000");
            async Task<string> Canonical()
            {
                var response = await service.Http.PostAsync("/v1/search", new StringContent(
                    """{"collection": "tiny", "text": "一只狗", "k": 6, "exact": true}""", Encoding.UTF8, "application/json"));
                Assert.True(response.IsSuccessStatusCode);
                var results = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("results");
                return string.Join(",", results.EnumerateArray().Select(r => $"{r.GetProperty("id")}:{r.GetProperty("score").GetDouble():F5}"));
            }
            string before = await Canonical();
            await Task.Run(() => Fuzz.AssertNoBugs(new SearchApiTarget(service.Http, "tiny", "writes"), 200));
            Assert.Equal(before, await Canonical());
        }
        finally { Directory.Delete(root, true); }
    }
}
