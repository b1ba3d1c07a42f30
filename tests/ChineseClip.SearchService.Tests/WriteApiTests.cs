using System.Net;
using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.SearchService.Tests;

/// <summary>Adds, deletes and deploys (each test on its own service and collection folder).</summary>
public class WriteApiTests
{
    const string Token = "s3cret";

    static async Task<(InProcessService Service, string Root)> Start(params string[] extra)
    {
        string root = Tiny.Collections("tiny");
        return (await InProcessService.StartAsync([$"--Search:Directory={root}", $"--Search:Token={Token}", .. extra]), root);
    }

    static object NewItems(params (long? Id, long Image, string[] Captions)[] items) =>
        new { items = items.Select(i => new { id = i.Id, image = Convert.ToBase64String(Tiny.Image(i.Image)), captions = i.Captions }) };

    [Fact]
    public async Task Writes_without_the_token_are_refused_and_change_nothing()
    {
        var (service, root) = await Start();
        await using var _ = service;
        var add = await Json.PostAsync(service.Http, "/v1/collections/tiny/items", NewItems((77, 1001, ["一只狗"])));
        Assert.Equal(401, (int)add.StatusCode);
        Assert.Contains("token", (await Json.ReadAsync(add)).GetProperty("error").GetString());
        var delete = await service.Http.DeleteAsync("/v1/collections/tiny/items/1001");
        Assert.Equal(401, (int)delete.StatusCode);
        var deploy = await Json.PostAsync(service.Http, "/v1/collections/tiny/deploy", new { schedule_id = "x" }, token: "wrong");
        Assert.Equal(401, (int)deploy.StatusCode);
        var collections = await Json.ReadAsync(await service.Http.GetAsync("/v1/collections"));
        Assert.Equal(6, collections.GetProperty("collections")[0].GetProperty("count").GetInt32());
        Assert.Equal(1, collections.GetProperty("collections")[0].GetProperty("version").GetInt32());
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task Added_items_are_searchable_a_bad_one_is_named_and_the_rest_goes_on_and_a_deleted_one_is_gone()
    {
        var (service, root) = await Start();
        await using var _ = service;
        var body = new
        {
            items = new object[]
            {
                new { id = 77L, image = Convert.ToBase64String(Tiny.Image(1001)), captions = new[] { "一只新加的狗" } },
                new { id = 78L, image = "@@@", captions = new[] { "坏的" } },
                new { id = 1002L, image = Convert.ToBase64String(Tiny.Image(1003)), captions = new[] { "重复的编号" } },
            },
        };
        var add = await Json.PostAsync(service.Http, "/v1/collections/tiny/items", body, Token);
        var added = await Json.ReadAsync(add);
        Assert.True(add.IsSuccessStatusCode, added.ToString());
        Assert.Equal(1, added.GetProperty("added").GetInt32());
        Assert.Equal(7, added.GetProperty("count").GetInt32());
        var rejected = added.GetProperty("rejected").EnumerateArray().ToList();
        Assert.Equal(2, rejected.Count);
        Assert.Contains(rejected, r => r.GetProperty("index").GetInt32() == 1 && r.GetProperty("error").GetString()!.Contains("items[1].image: not valid base64"));
        Assert.Contains(rejected, r => r.GetProperty("index").GetInt32() == 2 && r.GetProperty("error").GetString()!.Contains("1002 is already in the collection"));

        var found = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = "一只新加的狗", target = "texts", k = 1 }));
        Assert.Equal("一只新加的狗", found.GetProperty("results")[0].GetProperty("captions")[0].GetString());
        Assert.Equal(77, found.GetProperty("results")[0].GetProperty("image_id").GetInt64());

        var request = new HttpRequestMessage(HttpMethod.Delete, "/v1/collections/tiny/items/77");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Token);
        var delete = await service.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
        var after = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", image = Convert.ToBase64String(Tiny.Image(1001)), k = 10 }));
        Assert.Equal(6, after.GetProperty("results").GetArrayLength());
        Assert.DoesNotContain(after.GetProperty("results").EnumerateArray(), r => r.GetProperty("id").GetInt64() == 77);

        var again = new HttpRequestMessage(HttpMethod.Delete, "/v1/collections/tiny/items/77");
        again.Headers.Add("cnclip-token", Token);
        var missing = await service.Http.SendAsync(again);
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Contains("no item 77", (await Json.ReadAsync(missing)).GetProperty("error").GetString());
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task Searches_during_an_add_see_the_old_version_or_the_new_one_never_half()
    {
        var (service, root) = await Start();
        await using var _ = service;
        var add = Json.PostAsync(service.Http, "/v1/collections/tiny/items",
            NewItems((501, 1001, ["新一"]), (502, 1002, ["新二"]), (503, 1003, ["新三"])), Token);
        var seen = new List<(int Version, int Count)>();
        while (!add.IsCompleted || seen.Count < 3)
        {
            var answer = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = "狗", k = 100 }));
            int version = answer.GetProperty("version").GetInt32(), count = answer.GetProperty("results").GetArrayLength();
            seen.Add((version, count));
        }
        Assert.True((await add).IsSuccessStatusCode);
        Assert.All(seen, s => Assert.Equal(s.Version == 1 ? 6 : 9, s.Count));
        Directory.Delete(root, true);
    }

    internal static ScheduleStatus Finished(string id, string checkpoint, RunState stageState = RunState.Succeeded) => new()
    {
        Id = id, State = RunState.Succeeded, Updated = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow),
        Schedule = new Schedule
        {
            Name = "demo",
            Stages =
            {
                new Stage { Name = "stage1", Arch = Tiny.Fixture("arch.json"), Vocab = Tiny.Vocab },
                new Stage { Name = "stage2", Arch = Tiny.Fixture("arch.json"), Vocab = Tiny.Vocab, Hyperparameters = { ["context_length"] = "24" } },
            },
        },
        Stages =
        {
            new StageStatus { Name = "stage1", State = RunState.Succeeded, BestCheckpoint = "/nowhere/best.pt" },
            new StageStatus
            {
                Name = "stage2", State = stageState, BestCheckpoint = checkpoint,
                Progress = new Progress { T2IRecall = { 30, 80, 95 }, MeanRecall = 68.5 },
            },
        },
    };

    static async Task<System.Text.Json.JsonElement> WaitForDeploy(HttpClient http, string collection)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var list = await Json.ReadAsync(await http.GetAsync("/v1/collections"));
            var c = list.GetProperty("collections").EnumerateArray().FirstOrDefault(x => x.GetProperty("name").GetString() == collection);
            if (c.ValueKind != System.Text.Json.JsonValueKind.Undefined && c.GetProperty("deploy").ValueKind == System.Text.Json.JsonValueKind.Object
                && c.GetProperty("deploy").GetProperty("state").GetString() != "running")
                return c;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no finished deploy of {collection}: {list}");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task A_deploy_embeds_the_collection_with_the_schedule_s_best_checkpoint_and_swaps_it_in()
    {
        string checkpoint = Path.Combine(Directory.CreateTempSubdirectory("deploy").FullName, "best.pt");
        File.Copy(Tiny.Fixture("parity.pt"), checkpoint);
        var coordinator = new FakeCoordinator { Answer = Finished("sched-1", checkpoint) };
        await using var host = await CoordinatorHost.StartAsync(coordinator);
        var (service, root) = await Start($"--Search:Coordinator={host.Address}");
        await using var _ = service;

        var response = await Json.PostAsync(service.Http, "/v1/collections/tiny/deploy", new { schedule_id = "sched-1" }, Token);
        var started = await Json.ReadAsync(response);
        Assert.Equal(202, (int)response.StatusCode);
        Assert.Equal("stage2", started.GetProperty("stage").GetString());
        Assert.Equal(checkpoint, started.GetProperty("checkpoint").GetString());
        var during = await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = "狗" });
        Assert.True(during.IsSuccessStatusCode);

        var done = await WaitForDeploy(service.Http, "tiny");
        Assert.Equal("succeeded", done.GetProperty("deploy").GetProperty("state").GetString());
        var model = done.GetProperty("model");
        Assert.Equal("sched-1", model.GetProperty("schedule").GetString());
        Assert.Equal("stage2", model.GetProperty("stage").GetString());
        Assert.Equal(68.5, model.GetProperty("recall").GetDouble());
        Assert.Equal(checkpoint, model.GetProperty("checkpoint").GetString());
        Assert.Equal(2, done.GetProperty("version").GetInt32());
        Assert.Equal(6, done.GetProperty("count").GetInt32());
        Assert.Equal(24, ChineseClip.Search.CollectionFiles.ReadManifest(Path.Combine(root, "tiny")).Model.ContextLength);
        Assert.Equal("sched-1", coordinator.Calls.Single(c => c.Method == "GetSchedule").Request is GetScheduleRequest g ? g.Id : null);
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task A_deploy_of_an_unknown_schedule_or_an_unfinished_stage_is_refused_by_name()
    {
        var coordinator = new FakeCoordinator { Answer = Finished("sched-2", Tiny.Fixture("parity.pt"), RunState.Running) };
        await using var host = await CoordinatorHost.StartAsync(coordinator);
        var (service, root) = await Start($"--Search:Coordinator={host.Address}");
        await using var _ = service;

        var running = await Json.PostAsync(service.Http, "/v1/collections/tiny/deploy", new { schedule_id = "sched-2" }, Token);
        Assert.Equal(409, (int)running.StatusCode);
        Assert.Contains("stage 'stage2' is Running", (await Json.ReadAsync(running)).GetProperty("error").GetString());
        var stage = await Json.PostAsync(service.Http, "/v1/collections/tiny/deploy", new { schedule_id = "sched-2", stage = "stage9" }, Token);
        Assert.Equal(404, (int)stage.StatusCode);
        Assert.Contains("no stage 'stage9'", (await Json.ReadAsync(stage)).GetProperty("error").GetString());
        coordinator.Refusal = new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.NotFound, "no such schedule"));
        var unknown = await Json.PostAsync(service.Http, "/v1/collections/tiny/deploy", new { schedule_id = "nope" }, Token);
        Assert.Equal(404, (int)unknown.StatusCode);
        Assert.Contains("schedule 'nope': not found", (await Json.ReadAsync(unknown)).GetProperty("error").GetString());
        var nothing = await Json.PostAsync(service.Http, "/v1/collections/other/deploy", new { schedule_id = "sched-2" }, Token);
        Assert.Equal(404, (int)nothing.StatusCode);
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task Following_the_coordinator_deploys_a_succeeded_schedule_to_a_new_collection_from_search_images()
    {
        var coordinator = new FakeCoordinator();
        coordinator.Schedules.Add(Finished("sched-3", Tiny.Fixture("parity.pt")));
        coordinator.Answer = coordinator.Schedules[0];
        await using var host = await CoordinatorHost.StartAsync(coordinator);
        string root = Directory.CreateTempSubdirectory("follow").FullName;
        await using var service = await InProcessService.StartAsync($"--Search:Directory={root}", $"--Search:Coordinator={host.Address}",
            "--Search:Follow=true", "--Search:Collection=demo", $"--Search:Images={Tiny.Fixture("test_imgs.tsv")}", "--Search:FollowIntervalSeconds=0.2");

        var done = await WaitForDeploy(service.Http, "demo");
        Assert.Equal("succeeded", done.GetProperty("deploy").GetProperty("state").GetString());
        Assert.Equal("sched-3", done.GetProperty("model").GetProperty("schedule").GetString());
        Assert.Equal(6, done.GetProperty("count").GetInt32());
        var answer = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "demo", image = Convert.ToBase64String(Tiny.Image(1004)), k = 1 }));
        Assert.Equal(1004, answer.GetProperty("results")[0].GetProperty("id").GetInt64());
        await Task.Delay(600); // a few more polls: the schedule is deployed once
        Assert.Equal(1, coordinator.Calls.Count(c => c.Method == "GetSchedule"));
        Directory.Delete(root, true);
    }
}
