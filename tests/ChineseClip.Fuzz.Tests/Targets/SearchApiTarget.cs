using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ChineseClip.SearchService.Tests;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>The search service's JSON bodies (search by text, vector and image; embed; classify; item adds), mutated
/// as configs are and byte by byte, posted to a running service (in this process, on a real port). An answer is
/// accepted when 2xx and refused when 4xx with a one-line JSON {"error"}; a 5xx, a 4xx without that body, no answer,
/// or a service that stops answering health checks is a bug. Item adds go to <paramref name="writableCollection"/>,
/// so that the caller can check that the read collection answers as before.</summary>
public sealed class SearchApiTarget(HttpClient http, string collection, string writableCollection) : FuzzTarget
{
    public override string Name => "search API bodies";

    public override bool ReportedByCli => false;

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        string image = Convert.ToBase64String(SearchService.Tests.Tiny.Image(1001));
        var seeds = new (string Route, JsonNode Body)[]
        {
            ("/v1/search", new JsonObject { ["collection"] = collection, ["text"] = "一只狗", ["k"] = 3, ["target"] = "images", ["exact"] = true }),
            ("/v1/search", new JsonObject { ["collection"] = collection, ["vector"] = new JsonArray(Enumerable.Range(0, 8).Select(i => (JsonNode?)JsonValue.Create(i * 0.1)).ToArray()), ["k"] = 2 }),
            ("/v1/search", new JsonObject { ["collection"] = collection, ["image"] = image, ["target"] = "texts" }),
            ("/v1/embed", new JsonObject { ["texts"] = new JsonArray("狗", "城市"), ["images"] = new JsonArray(image) }),
            ("/v1/classify", new JsonObject { ["image"] = image, ["labels"] = new JsonArray("狗", "猫"), ["templates"] = new JsonArray("一张{}的照片") }),
            ($"/v1/collections/{writableCollection}/items", new JsonObject
            {
                ["items"] = new JsonArray(new JsonObject { ["image"] = image, ["captions"] = new JsonArray("一只狗") }),
            }),
        };
        foreach (var (route, body) in seeds)
        {
            for (int i = 0; i < 25; i++)
            {
                var (what, tree) = Mutate.Json(body, random);
                yield return new FuzzCase($"{route}: {what}", Encoding.UTF8.GetBytes(tree?.ToJsonString() ?? "null"), Source: route);
            }
            byte[] text = Encoding.UTF8.GetBytes(body.ToJsonString());
            for (int i = 0; i < 8; i++)
            {
                var (what, bytes) = Mutate.Bytes(text, random);
                yield return new FuzzCase($"{route}: {what}", bytes, Source: route);
            }
            yield return new FuzzCase($"{route}: nested 10,000 deep", Encoding.UTF8.GetBytes(Mutate.Nested(10_000)), Source: route);
            yield return new FuzzCase($"{route}: empty", [], Source: route);
        }
    }

    public override void Run(FuzzCase c)
    {
        using var content = new ByteArrayContent(c.Input);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = http.PostAsync(c.Source, content).GetAwaiter().GetResult();
        string answer = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        int status = (int)response.StatusCode;
        using (var health = http.GetAsync("/health").GetAwaiter().GetResult())
        {
            if (!health.IsSuccessStatusCode) throw new FuzzBugException($"the service stopped answering /health ({(int)health.StatusCode}) after HTTP {status}");
        }
        if (status is >= 200 and < 300) return;
        if (status is < 400 or >= 500) throw new FuzzBugException($"HTTP {status}: {answer[..Math.Min(answer.Length, 300)]}");
        string? error;
        try { error = JsonDocument.Parse(answer).RootElement.GetProperty("error").GetString(); }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new FuzzBugException($"HTTP {status} without a JSON error: {answer[..Math.Min(answer.Length, 300)]}");
        }
        // The route is the source a refusal names; the message names the field (checked by the API tests).
        throw new ApiRefusal($"{c.Source}: HTTP {status}: {error}");
    }

    public override bool IsRefusal(Exception e) => e is ApiRefusal;

    sealed class ApiRefusal(string message) : Exception(message);
}
