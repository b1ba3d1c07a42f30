namespace ChineseClip.Cli.Tests;

public class DeployCommandTests
{
    static CliRunner.Result Deploy(FakeSearchService search, params string[] args) =>
        CliRunner.RunWithEnvironment(new Dictionary<string, string> { ["CNCLIP_SEARCH"] = search.Address, ["CNCLIP_TOKEN"] = "tok" }, ["deploy", .. args]);

    [Fact]
    public async Task Asks_the_search_service_to_deploy_the_schedule_and_waits_for_the_swap()
    {
        await using var search = await FakeSearchService.StartAsync();
        var r = Deploy(search, "s-1", "--stage", "stage3", "--collection", "demo");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("42 images served from /runs/s-1/2/best.pt (version 2)", r.Out);
        var post = search.Requests.Single(q => q.Method == "POST");
        Assert.Equal("/v1/collections/demo/deploy", post.Path);
        Assert.Contains("\"schedule_id\":\"s-1\"", post.Body);
        Assert.Contains("\"stage\":\"stage3\"", post.Body);
        Assert.Equal("tok", post.Token);
    }

    [Fact]
    public async Task A_failed_deploy_exits_1_with_the_service_s_reason()
    {
        await using var search = await FakeSearchService.StartAsync();
        search.DeployState = "failed";
        var r = Deploy(search, "s-1", "--collection", "demo");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("checkpoint unreadable", r.Error);
    }

    [Fact]
    public async Task A_refused_deploy_is_one_line_naming_the_service_s_error()
    {
        await using var search = await FakeSearchService.StartAsync();
        var r = Deploy(search, "s-1", "--collection", "missing");
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("cnclip: error: ", r.Error);
        Assert.Contains("collection 'missing': unknown", r.Error);
    }

    [Fact]
    public void An_unreachable_search_service_is_named()
    {
        var r = CliRunner.RunWithEnvironment(new Dictionary<string, string>(), "deploy", "s-1", "--search", "http://127.0.0.1:1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("cannot reach the search service at http://127.0.0.1:1", r.Error);
    }
}
