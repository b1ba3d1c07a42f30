// A test double of the search service for `cnclip deploy` and `cnclip bench serve`: canned answers, every request
// recorded with its token header. The real service is tested in ChineseClip.SearchService.Tests.
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ChineseClip.Cli.Tests;

public sealed class FakeSearchService : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly List<(string Method, string Path, string Body, string? Token)> _requests = [];

    FakeSearchService(WebApplication app) => _app = app;

    public string Address => _app.Urls.Single();
    /// <summary>The state GET /v1/collections reports for the deploy ("succeeded" or "failed").</summary>
    public string DeployState { get; set; } = "succeeded";
    /// <summary>Every how many searches one answers 500.</summary>
    public int FailEvery { get; set; }

    public IReadOnlyList<(string Method, string Path, string Body, string? Token)> Requests
    {
        get { lock (_requests) return [.. _requests]; }
    }

    public static async Task<FakeSearchService> StartAsync(Func<FakeSearchService, WebApplication, Task>? map = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var fake = new FakeSearchService(app);
        int searches = 0;
        app.Use(async (context, next) =>
        {
            string body = await new StreamReader(context.Request.Body).ReadToEndAsync();
            lock (fake._requests) fake._requests.Add((context.Request.Method, context.Request.Path, body, context.Request.Headers["cnclip-token"].FirstOrDefault()));
            await next(context);
        });
        app.MapPost("/v1/collections/{name}/deploy", (string name) => name == "missing"
            ? Results.Json(new { error = "collection 'missing': unknown" }, statusCode: 404)
            : Results.Json(new { state = "running", schedule = "s-1", stage = "stage3", checkpoint = "/runs/s-1/2/best.pt" }, statusCode: 202));
        app.MapGet("/v1/collections", () => Results.Json(new
        {
            collections = new[]
            {
                new
                {
                    name = "demo", count = 42, version = 2,
                    deploy = new { state = fake.DeployState, checkpoint = "/runs/s-1/2/best.pt", error = fake.DeployState == "failed" ? "checkpoint unreadable" : null },
                },
            },
        }));
        app.MapPost("/v1/search", () => fake.FailEvery > 0 && Interlocked.Increment(ref searches) % fake.FailEvery == 0
            ? Results.Json(new { error = "boom" }, statusCode: 500)
            : Results.Json(new { results = Array.Empty<object>(), took_ms = 1.0 }));
        await app.StartAsync();
        return fake;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
