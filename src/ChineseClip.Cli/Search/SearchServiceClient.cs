// The client side of the search service for `cnclip deploy` and `cnclip bench serve`: where it is (--search, else
// CNCLIP_SEARCH, else the local default), the token writes carry (CNCLIP_TOKEN, as the cnclip-token header), and the
// one place that turns HTTP failures into one-line errors.
using System.Net.Http.Json;
using System.Text.Json;

namespace ChineseClip.Cli.Search;

public sealed class SearchServiceClient : IDisposable
{
    public const string DefaultAddress = "http://127.0.0.1:5292";
    public const string AddressVariable = "CNCLIP_SEARCH";

    readonly HttpClient _http;

    public SearchServiceClient(string? addressOption, Func<string, string?> environment, TimeSpan? timeout = null)
    {
        string address = (string.IsNullOrWhiteSpace(addressOption) ? null : addressOption) ?? NonEmpty(environment(AddressVariable)) ?? DefaultAddress;
        if (!Uri.TryCreate(address.Trim(), UriKind.Absolute, out Uri? uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new CliException($"search service address '{address}': expected http://HOST:PORT");
        Address = uri.ToString().TrimEnd('/');
        _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = uri, Timeout = timeout ?? TimeSpan.FromSeconds(100) };
        if (NonEmpty(environment(Cluster.CoordinatorTarget.TokenVariable)) is string token) _http.DefaultRequestHeaders.Add(Cluster.CoordinatorClient.TokenHeader, token);
    }

    static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    public string Address { get; }
    public HttpClient Http => _http;

    /// <summary>Sends a request and returns its JSON answer; a failed one becomes a CliException naming the service's error.</summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body = null)
    {
        HttpResponseMessage response;
        try
        {
            var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            response = await _http.SendAsync(request);
        }
        catch (HttpRequestException e)
        {
            throw new CliException($"cannot reach the search service at {Address} ({e.InnerException?.Message ?? e.Message})");
        }
        string text = await response.Content.ReadAsStringAsync();
        JsonElement json;
        try
        {
            using var doc = JsonDocument.Parse(text);
            json = doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new CliException($"the search service at {Address} answered {(int)response.StatusCode} without JSON", ExitCodes.Failure);
        }
        if (!response.IsSuccessStatusCode)
        {
            string error = json.ValueKind == JsonValueKind.Object && json.TryGetProperty("error", out var e) ? e.GetString() ?? "" : text;
            throw new CliException($"the search service at {Address} refused: {error}", (int)response.StatusCode >= 500 ? ExitCodes.Failure : ExitCodes.BadInput);
        }
        return json;
    }

    /// <summary>The collection as GET /v1/collections lists it, or null when the service does not list it.</summary>
    public async Task<JsonElement?> CollectionAsync(string name)
    {
        var list = await SendAsync(HttpMethod.Get, "/v1/collections");
        var served = list.GetProperty("collections").EnumerateArray().FirstOrDefault(c => c.GetProperty("name").GetString() == name);
        return served.ValueKind == JsonValueKind.Object ? served : null;
    }

    /// <summary>Starts a deploy of a schedule's best checkpoint to <paramref name="name"/> and returns the service's answer.</summary>
    public Task<JsonElement> StartDeployAsync(string name, string scheduleId, string? stage) =>
        SendAsync(HttpMethod.Post, $"/v1/collections/{Uri.EscapeDataString(name)}/deploy", new { schedule_id = scheduleId, stage });

    /// <summary>Polls until the collection's deploy is no longer running; returns the collection as listed then.</summary>
    public async Task<JsonElement> WaitForDeployAsync(string name)
    {
        while (true)
        {
            await Task.Delay(500);
            if (await CollectionAsync(name) is not { } served || served.GetProperty("deploy").ValueKind != JsonValueKind.Object) continue;
            if (served.GetProperty("deploy").GetProperty("state").GetString() != "running") return served;
        }
    }

    public void Dispose() => _http.Dispose();
}
