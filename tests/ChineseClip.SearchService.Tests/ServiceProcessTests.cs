namespace ChineseClip.SearchService.Tests;

/// <summary>The service as its own process on a real port, as users and the AppHost run it.</summary>
public class ServiceProcessTests
{
    [Fact]
    public async Task The_service_process_lists_its_collections_searches_and_answers_bad_input_with_a_json_error()
    {
        string root = Tiny.Collections("tiny");
        using var service = await ServiceProcess.StartAsync($"--Search:Directory={root}");
        var collections = await Json.ReadAsync(await service.Http.GetAsync("/v1/collections"));
        Assert.Equal("tiny", collections.GetProperty("collections")[0].GetProperty("name").GetString());

        var answer = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search",
            new { collection = "tiny", image = Convert.ToBase64String(Tiny.Image(1006)), k = 2 }));
        Assert.Equal(1006, answer.GetProperty("results")[0].GetProperty("id").GetInt64());
        Assert.True(answer.GetProperty("took_ms").GetDouble() > 0);

        var bad = await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = "狗", k = 5000 });
        Assert.Equal(400, (int)bad.StatusCode);
        Assert.Contains("k: 5000", (await Json.ReadAsync(bad)).GetProperty("error").GetString());
        Assert.True((await service.Http.GetAsync("/health")).IsSuccessStatusCode);
        Directory.Delete(root, true);
    }
}
