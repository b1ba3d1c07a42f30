// The service as a WebApplication built from arguments: Program runs it; tests start it in-process on a real port.
using ChineseClip.SearchService.Api;
using ChineseClip.SearchService.Extensions;

namespace ChineseClip.SearchService;

public static class SearchServiceApp
{
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
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
