// Every failed request answers a 4xx/5xx with {"error": "..."} naming the problem; the process and the collections
// are untouched by it.
using System.Text.Json;
using ChineseClip.Model.Imaging;
using ChineseClip.SearchService.Serving;
using Microsoft.AspNetCore.Http.Features;

namespace ChineseClip.SearchService.Api;

public static class ApiErrors
{
    public static IApplicationBuilder UseApiErrors(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        try
        {
            await next(context);
        }
        catch (Exception e) when (Describe(context, e) is (int status, string message))
        {
            if (context.Response.HasStarted) throw;
            context.Response.Clear();
            context.Response.StatusCode = status;
            await context.Response.WriteAsJsonAsync(new { error = message });
        }
    });

    static (int, string)? Describe(HttpContext context, Exception e) => e switch
    {
        ApiException api => (api.Status, api.Message),
        BadHttpRequestException { StatusCode: 413 } => (413,
            $"request body larger than {context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes (Search:MaxRequestBytes)"),
        BadHttpRequestException bad => (bad.StatusCode, $"bad request: {bad.Message}"),
        JsonException json => (400, $"body is not the JSON expected: {json.Message}"),
        InvalidImageException image => (400, $"image: {image.Message}"),
        _ => null,
    };
}
