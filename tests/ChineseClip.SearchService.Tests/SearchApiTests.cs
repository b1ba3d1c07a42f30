using System.Net;
using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Text;

namespace ChineseClip.SearchService.Tests;

/// <summary>The read routes and every bad input, against one service holding the fixture collection "tiny".</summary>
public sealed class SearchApiFixture : IAsyncLifetime
{
    public string Root { get; private set; } = "";
    public InProcessService Service { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Root = Tiny.Collections("tiny");
        Service = await InProcessService.StartAsync($"--Search:Directory={Root}", "--Search:MaxRequestBytes=2000000");
    }

    public async Task DisposeAsync()
    {
        await Service.DisposeAsync();
        Directory.Delete(Root, true);
    }
}

public class SearchApiTests(SearchApiFixture fixture) : IClassFixture<SearchApiFixture>
{
    HttpClient Http => fixture.Service.Http;

    Task<HttpResponseMessage> Search(object body) => Json.PostAsync(Http, "/v1/search", body);

    [Fact]
    public async Task Collections_name_count_dimension_and_the_serving_model()
    {
        var body = await Json.ReadAsync(await Http.GetAsync("/v1/collections"));
        var tiny = body.GetProperty("collections").EnumerateArray().Single();
        Assert.Equal("tiny", tiny.GetProperty("name").GetString());
        Assert.Equal(6, tiny.GetProperty("count").GetInt32());
        Assert.Equal(64, tiny.GetProperty("dimension").GetInt32());
        Assert.Equal(Tiny.Model().Sha256, tiny.GetProperty("model").GetProperty("sha256").GetString());
        Assert.EndsWith("parity.pt", tiny.GetProperty("model").GetProperty("checkpoint").GetString());
        Assert.True(tiny.GetProperty("built_at").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddHours(-1));
    }

    [Fact]
    public async Task Exact_api_results_equal_extract_features_and_predict_both_ways()
    {
        string work = Directory.CreateTempSubdirectory("api-exact").FullName;
        File.Copy(Tiny.Fixture("test_imgs.tsv"), Path.Combine(work, "test_imgs.tsv"));
        File.Copy(Tiny.Fixture("test_texts.jsonl"), Path.Combine(work, "test_texts.jsonl"));
        var io = new Cli.CliIO(new StringReader(""), new StringWriter(), new StringWriter());
        Assert.Equal(0, Cli.CliApp.Run(["extract-features", "--checkpoint", Tiny.Fixture("parity.pt"), "--arch", Tiny.Fixture("arch.json"),
            "--vocab", Tiny.Vocab, "--data-dir", work, "--split", "test", "--output-dir", work], io));
        var images = FeatureJsonl.Read(Path.Combine(work, "test_imgs.img_feat.jsonl"), "image_id");
        var texts = FeatureJsonl.Read(Path.Combine(work, "test_texts.txt_feat.jsonl"), "text_id");
        var captions = TextJsonl.Read(Tiny.Fixture("test_texts.jsonl"), _ => { }).ToDictionary(t => t.TextId, t => t.Text);
        foreach (var (direction, target, k) in new[] { ("text-to-image", "images", 6), ("image-to-text", "texts", 12) })
        {
            string predictions = Path.Combine(work, direction + ".jsonl");
            Assert.Equal(0, Cli.CliApp.Run(["predict", "--image-feats", Path.Combine(work, "test_imgs.img_feat.jsonl"), "--text-feats",
                Path.Combine(work, "test_texts.txt_feat.jsonl"), "--output", predictions, "--top-k", $"{k}", "--direction", direction], io));
            foreach (string line in File.ReadLines(predictions))
            {
                using var p = JsonDocument.Parse(line);
                bool t2i = target == "images";
                long query = p.RootElement.GetProperty(t2i ? "text_id" : "image_id").GetInt64();
                long[] expected = p.RootElement.GetProperty(t2i ? "image_ids" : "text_ids").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                object body = t2i
                    ? new { collection = "tiny", text = captions[query], target, k, exact = true }
                    : new { collection = "tiny", image = Convert.ToBase64String(Tiny.Image(query)), target, k, exact = true };
                var response = await Search(body);
                var answer = await Json.ReadAsync(response);
                Assert.True(response.IsSuccessStatusCode, answer.ToString());
                var results = answer.GetProperty("results").EnumerateArray().ToList();
                Assert.Equal(expected, results.Select(r => r.GetProperty("id").GetInt64()));
                float[] q = t2i ? texts[query] : images[query];
                foreach (var r in results)
                {
                    float[] other = t2i ? images[r.GetProperty("id").GetInt64()] : texts[r.GetProperty("id").GetInt64()];
                    Assert.Equal(q.Zip(other, (a, b) => (double)a * b).Sum(), r.GetProperty("score").GetDouble(), 1e-5);
                }
            }
        }
        Directory.Delete(work, true);
    }

    [Fact]
    public async Task An_uploaded_image_finds_itself_first_with_its_captions_and_thumbnail()
    {
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Tiny.Image(1002)), "file", "query.png" },
            { new StringContent("tiny"), "collection" },
            { new StringContent("3"), "k" },
            { new StringContent("images"), "target" },
        };
        var response = await Http.PostAsync("/v1/search/upload", form);
        var answer = await Json.ReadAsync(response);
        Assert.True(response.IsSuccessStatusCode, answer.ToString());
        var first = answer.GetProperty("results")[0];
        Assert.Equal(1002, first.GetProperty("id").GetInt64());
        Assert.Equal(3, answer.GetProperty("results").GetArrayLength());
        Assert.Contains("雨后的城市街道，路灯倒映在水里。", first.GetProperty("captions").EnumerateArray().Select(c => c.GetString()));
        var thumbnail = await Http.GetAsync(first.GetProperty("image").GetString());
        Assert.Equal(HttpStatusCode.OK, thumbnail.StatusCode);
        Assert.Equal("image/jpeg", thumbnail.Content.Headers.ContentType!.MediaType);
        Assert.Equal([0xFF, 0xD8], (await thumbnail.Content.ReadAsByteArrayAsync())[..2]);
    }

    [Fact]
    public async Task A_vector_query_and_the_texts_target_answer_with_captions()
    {
        var embed = await Json.ReadAsync(await Json.PostAsync(Http, "/v1/embed", new { texts = new[] { "一条白色的小狗在草地上奔跑" } }));
        Assert.Equal(64, embed.GetProperty("dimension").GetInt32());
        float[] vector = embed.GetProperty("texts")[0].EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => (double)v * v)), 5);

        var answer = await Json.ReadAsync(await Search(new { collection = "tiny", vector, target = "texts", k = 1 }));
        var first = answer.GetProperty("results")[0];
        Assert.Equal(10, first.GetProperty("id").GetInt64());
        Assert.Equal("一条白色的小狗在草地上奔跑", first.GetProperty("captions")[0].GetString());
        Assert.Equal(1.0, first.GetProperty("score").GetDouble(), 4);
        Assert.EndsWith("/items/1001/image", first.GetProperty("image").GetString());
    }

    [Fact]
    public async Task Embed_takes_images_and_classify_gives_probabilities_over_the_labels()
    {
        var embed = await Json.ReadAsync(await Json.PostAsync(Http, "/v1/embed", new { images = new[] { Convert.ToBase64String(Tiny.Image(1001)) } }));
        Assert.Equal(64, embed.GetProperty("images")[0].GetArrayLength());

        var response = await Json.PostAsync(Http, "/v1/classify", new { image = Convert.ToBase64String(Tiny.Image(1001)), labels = new[] { "狗", "城市", "鞋" } });
        var answer = await Json.ReadAsync(response);
        Assert.True(response.IsSuccessStatusCode, answer.ToString());
        var labels = answer.GetProperty("labels").EnumerateArray().ToList();
        Assert.Equal(3, labels.Count);
        Assert.Equal(1.0, labels.Sum(l => l.GetProperty("probability").GetDouble()), 6);
        Assert.True(labels[0].GetProperty("probability").GetDouble() >= labels[2].GetProperty("probability").GetDouble());
        Assert.Equal(183, answer.GetProperty("templates").GetInt32());

        // The default is the official set: giving it explicitly answers the same, and so does a second (cached) request.
        var again = await Json.ReadAsync(await Json.PostAsync(Http, "/v1/classify", new { image = Convert.ToBase64String(Tiny.Image(1001)), labels = new[] { "狗", "城市", "鞋" } }));
        var explicitly = await Json.ReadAsync(await Json.PostAsync(Http, "/v1/classify",
            new { image = Convert.ToBase64String(Tiny.Image(1001)), labels = new[] { "狗", "城市", "鞋" }, templates = PromptTemplates.Official }));
        foreach (var other in new[] { again, explicitly })
        {
            var otherLabels = other.GetProperty("labels").EnumerateArray().ToList();
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(labels[i].GetProperty("label").GetString(), otherLabels[i].GetProperty("label").GetString());
                Assert.Equal(labels[i].GetProperty("probability").GetDouble(), otherLabels[i].GetProperty("probability").GetDouble(), 6);
            }
        }

        // Other templates give other class vectors, so other probabilities.
        var one = await Json.ReadAsync(await Json.PostAsync(Http, "/v1/classify",
            new { image = Convert.ToBase64String(Tiny.Image(1001)), labels = new[] { "狗", "城市", "鞋" }, templates = new[] { "一张{}的照片" } }));
        Assert.Equal(1, one.GetProperty("templates").GetInt32());
        Assert.NotEqual(labels.First(l => l.GetProperty("label").GetString() == "狗").GetProperty("probability").GetDouble(),
            one.GetProperty("labels").EnumerateArray().First(l => l.GetProperty("label").GetString() == "狗").GetProperty("probability").GetDouble(), 9);
    }

    public static TheoryData<string, string, int, string> BadRequests => new()
    {
        { "/v1/search", """{"collection": "tiny", "image": "%%%not base64%%%"}""", 400, "image: not valid base64" },
        { "/v1/search", $$"""{"collection": "tiny", "image": "{{Convert.ToBase64String("just some text, no image"u8.ToArray())}}"}""", 400, "image:" },
        { "/v1/search", """{"collection": "tiny", "text": "   "}""", 400, "text: empty query" },
        { "/v1/search", """{"collection": "tiny", "text": "狗", "k": 0}""", 400, "k: 0" },
        { "/v1/search", """{"collection": "tiny", "text": "狗", "k": 1001}""", 400, "k: 1001" },
        { "/v1/search", """{"collection": "nope", "text": "狗"}""", 404, "collection 'nope'" },
        { "/v1/search", """{"collection": "tiny", "text": "狗", "vector": [1, 2]}""", 400, "exactly one of text, image or vector" },
        { "/v1/search", """{"collection": "tiny", "vector": [1, 2]}""", 400, "vector: 2 values" },
        { "/v1/search", """{"collection": "tiny", "text": "狗", "target": "videos"}""", 400, "target 'videos'" },
        { "/v1/search", """{"collection": "tiny", "text": "狗", "k": "ten"}""", 400, "body:" },
        { "/v1/search", """{"collection": "tiny", "text": """, 400, "body:" },
        { "/v1/search", "{\"collection\": \"tiny\", \"image\": \"" + new string('A', 3_000_000) + "\"}", 413, "larger than 2000000 bytes" },
        { "/v1/embed", """{}""", 400, "give texts and/or images" },
        { "/v1/classify", """{"image": "AAAA"}""", 400, "labels" },
        { "/v1/classify", """{"image": "AAAA", "labels": ["狗"], "templates": ["{}的照片", "一张照片"]}""", 400, "templates[1]: needs {}" },
        { "/v1/classify", """{"image": "AAAA", "labels": ["狗"], "templates": [null]}""", 400, "templates[0]: needs {}" },
        { "/v1/classify", "{\"image\": \"AAAA\", \"labels\": [" + string.Join(", ", Enumerable.Repeat("\"狗\"", 51)) + "]}", 400, "labels x templates: at most 9150 prompts" },
        { "/v1/collections/nope/items", """{"items": []}""", 404, "collection 'nope'" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_input_is_a_4xx_naming_the_problem_and_the_service_keeps_answering(string route, string body, int status, string named)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, route) { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        // A body over the limit is refused from its Content-Length and the connection closed: a client still sending
        // then meets a broken pipe before it reads the 413 (seen on a loaded machine). "Expect: 100-continue" is how a
        // client learns of the refusal before it sends the body.
        if (status == 413) request.Headers.ExpectContinue = true;
        var response = await Http.SendAsync(request);
        var answer = await Json.ReadAsync(response);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Contains(named, answer.GetProperty("error").GetString());

        var after = await Json.ReadAsync(await Search(new { collection = "tiny", text = "狗", k = 6 }));
        Assert.Equal(6, after.GetProperty("results").GetArrayLength());
    }

    [Fact]
    public async Task An_image_above_the_pixel_limit_is_refused_before_decoding()
    {
        // A PNG header claiming 100000 x 100000 pixels: refused from its header, never decoded.
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 2, 0, 0, 0, 0, 0, 0, 0];
        var response = await Search(new { collection = "tiny", image = Convert.ToBase64String(png) });
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("image:", (await Json.ReadAsync(response)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task Thumbnails_of_unknown_items_are_404_and_the_page_is_served_at_the_root()
    {
        var missing = await Http.GetAsync("/v1/collections/tiny/items/999/image");
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Contains("no item 999", (await Json.ReadAsync(missing)).GetProperty("error").GetString());
        var page = await Http.GetAsync("/");
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        Assert.Contains("/page/app.js", await page.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/page/app.js")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/health")).StatusCode);
    }
}

/// <summary>The encoder backends: onnx by default (the collection's checkpoint exported once under
/// Search:OnnxCache), torch on request; both answer the same.</summary>
public class BackendTests
{
    [Fact]
    public async Task The_default_onnx_backend_answers_as_the_torch_backend_and_keeps_its_export_in_the_cache()
    {
        string root = Tiny.Collections("tiny"), cache = Path.Combine(root, "exports");
        try
        {
            async Task<(long Id, double Score)[]> Ask(params string[] settings)
            {
                await using var service = await InProcessService.StartAsync([$"--Search:Directory={root}", .. settings]);
                var answer = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = "一只狗", k = 6, exact = true }));
                return answer.GetProperty("results").EnumerateArray().Select(r => (r.GetProperty("id").GetInt64(), r.GetProperty("score").GetDouble())).ToArray();
            }
            var onnx = await Ask($"--Search:OnnxCache={cache}");
            Assert.Single(Directory.GetDirectories(cache));
            var torch = await Ask("--Search:Backend=torch");
            Assert.Equal(torch.Select(r => r.Id), onnx.Select(r => r.Id));
            for (int i = 0; i < torch.Length; i++) Assert.Equal(torch[i].Score, onnx[i].Score, 1e-5);
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public async Task An_unknown_backend_stops_the_start_naming_the_setting()
    {
        string root = Tiny.Collections();
        try
        {
            var e = await Assert.ThrowsAnyAsync<Exception>(() => InProcessService.StartAsync($"--Search:Directory={root}", "--Search:Backend=tensorrt"));
            Assert.Contains("Search:Backend", e.Message);
        }
        finally { Directory.Delete(root, true); }
    }
}

/// <summary>GET /v1/collections/{name}/report: the training curves of the run that wrote the serving checkpoint.</summary>
public class ReportRouteTests
{
    [Fact]
    public async Task The_serving_checkpoint_s_run_has_a_report_and_a_checkpoint_without_one_is_a_404()
    {
        string run = Directory.CreateTempSubdirectory("search-report-run").FullName;
        string checkpoint = Path.Combine(run, "checkpoints", "best.pt");
        Directory.CreateDirectory(Path.GetDirectoryName(checkpoint)!);
        File.Copy(Tiny.Fixture("parity.pt"), checkpoint);
        File.WriteAllLines(Path.Combine(run, "metrics.jsonl"),
        [
            """{"type":"train","step":1,"epoch":1,"loss":3.5,"lr":0.001}""",
            """{"type":"train","step":2,"epoch":1,"loss":3.1,"lr":0.002}""",
            """{"type":"valid","step":2,"epoch":1,"epoch_end":true,"t2i":{"R1":10,"R5":40,"R10":70,"Mean":40},"mean_recall":41.5}""",
        ]);
        string trained = Tiny.CollectionsOf(Tiny.Model(checkpoint), "trained"), fixture = Tiny.Collections("fixture");
        try
        {
            await using var a = await InProcessService.StartAsync($"--Search:Directory={trained}");
            var listed = (await Json.ReadAsync(await a.Http.GetAsync("/v1/collections"))).GetProperty("collections")[0];
            Assert.Equal("/v1/collections/trained/report", listed.GetProperty("report").GetString());
            var page = await a.Http.GetAsync("/v1/collections/trained/report");
            Assert.Equal(System.Net.HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
            string html = await page.Content.ReadAsStringAsync();
            Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(html, "<svg ").Count);
            Assert.Contains("best mean recall 41.50", html);

            await using var b = await InProcessService.StartAsync($"--Search:Directory={fixture}");
            var none = (await Json.ReadAsync(await b.Http.GetAsync("/v1/collections"))).GetProperty("collections")[0];
            Assert.Equal(System.Text.Json.JsonValueKind.Null, none.GetProperty("report").ValueKind);
            var missing = await b.Http.GetAsync("/v1/collections/fixture/report");
            Assert.Equal(404, (int)missing.StatusCode);
            Assert.Contains("no training metrics", (await Json.ReadAsync(missing)).GetProperty("error").GetString());
        }
        finally
        {
            Directory.Delete(trained, true);
            Directory.Delete(fixture, true);
            Directory.Delete(run, true);
        }
    }
}
