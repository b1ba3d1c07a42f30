// The page: plain HTML, CSS and JavaScript embedded in the assembly, served at / (no front-end build step).
using System.Reflection;

namespace ChineseClip.SearchService.Api;

public static class PageEndpoints
{
    static readonly Dictionary<string, string> Types = new()
    {
        [".html"] = "text/html; charset=utf-8", [".js"] = "text/javascript; charset=utf-8", [".css"] = "text/css; charset=utf-8",
    };

    public static WebApplication MapPage(this WebApplication app)
    {
        app.MapGet("/", () => Serve("index.html"));
        app.MapGet("/page/{file}", (string file) => Serve(file));
        return app;
    }

    static IResult Serve(string file)
    {
        Stream? stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("page/" + file);
        if (stream is null || !Types.TryGetValue(Path.GetExtension(file), out string? type))
        {
            stream?.Dispose();
            return Results.Json(new { error = $"no page file '{file}'" }, statusCode: 404);
        }
        return Results.Stream(stream, type);
    }
}
