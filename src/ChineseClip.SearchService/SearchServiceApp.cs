// The service as a WebApplication built from arguments: Program runs it; tests start it in-process on a real port.
using ChineseClip.SearchService.Api;
using ChineseClip.SearchService.Extensions;

namespace ChineseClip.SearchService;

public static class SearchServiceApp
{
    public const string DefaultUrl = "http://127.0.0.1:5292";

    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        // Loopback by default. Set here rather than in appsettings.json, which flows into the output of every project
        // that references this one (the tests) and would bind their own hosts to this port.
        if (builder.Configuration["urls"] is null && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
            builder.WebHost.UseUrls(DefaultUrl);
        builder.AddServiceDefaults();
        builder.AddSearchService();

        var app = builder.Build();
        app.UseApiErrors();
        app.MapSearchApi();
        app.MapPage();
        app.MapDefaultEndpoints();
        return app;
    }
}
