// Test support: a collection folder built from the official-tiny fixture, and the search service serving it,
// in-process on a real loopback port (or as its own process, as users run it).
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using ChineseClip.Search;
using Microsoft.AspNetCore.Builder;

namespace ChineseClip.SearchService.Tests;

public static class Tiny
{
    public static string Fixture(string name) => SharedFiles.Path("fixtures", "official-tiny", name);
    public static string Vocab => SharedFiles.Path("reference", "vocab.txt");
    public static ModelInfo Model(string? checkpoint = null) => ModelInfo.Of(checkpoint ?? Fixture("parity.pt"), Fixture("arch.json"), Vocab, 52);

    public static byte[] Image(long id) =>
        Data.Formats.ImageTsv.Read(Fixture("test_imgs.tsv"), _ => { }).Single(i => i.ImageId == id).Bytes;

    /// <summary>A folder of collections holding <paramref name="names"/>, each the fixture's six images and twelve captions.</summary>
    public static string Collections(params string[] names) => CollectionsOf(Model(), names);

    /// <summary>As <see cref="Collections"/>, embedded with <paramref name="model"/>.</summary>
    public static string CollectionsOf(ModelInfo model, params string[] names)
    {
        string root = Directory.CreateTempSubdirectory("search-service").FullName;
        using var embedder = ClipEmbedder.Load(model);
        foreach (string name in names)
            CollectionBuilder.Add(Path.Combine(root, name), name, embedder, ImageSources.Open(Fixture("test_imgs.tsv"), null, _ => { }),
                new BuildOptions { Threads = 2 }, e => throw new InvalidOperationException(e));
        return root;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The service in this process, on a real port, with the given settings (Search:Directory must be among them).</summary>
public sealed class InProcessService : IAsyncDisposable
{
    readonly WebApplication _app;

    InProcessService(WebApplication app, string address)
    {
        _app = app;
        Address = address;
        Http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(60) };
    }

    public string Address { get; }
    public HttpClient Http { get; }

    public static async Task<InProcessService> StartAsync(params string[] settings)
    {
        var app = SearchServiceApp.Build([$"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{Tiny.FreePort()}", "--Logging:LogLevel:Default=Warning", .. settings]);
        await app.StartAsync();
        return new InProcessService(app, app.Urls.Single());
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>The service as its own process (its build output), the way users and the AppHost start it.</summary>
public sealed class ServiceProcess : IDisposable
{
    readonly Process _process;
    readonly System.Text.StringBuilder _log = new();

    ServiceProcess(Process process, string address)
    {
        _process = process;
        Address = address;
        Http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(60) };
    }

    public string Address { get; }
    public HttpClient Http { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    public static string Executable()
    {
        var dir = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory));
        string configuration = dir.Parent!.Parent!.Name; // bin/<Configuration>/net10.0/linux-x64/
        while (!File.Exists(Path.Combine(dir.FullName, "ChineseClip.sln"))) dir = dir.Parent ?? throw new InvalidOperationException("no ChineseClip.sln above the tests");
        string path = Path.Combine(dir.FullName, "src", "ChineseClip.SearchService", "bin", configuration, "net10.0", "linux-x64", "ChineseClip.SearchService");
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path}: build the solution first", path);
    }

    public static async Task<ServiceProcess> StartAsync(params string[] settings)
    {
        string exe = Executable();
        string address = $"http://127.0.0.1:{Tiny.FreePort()}";
        var start = new ProcessStartInfo(exe) { WorkingDirectory = Path.GetDirectoryName(exe)!, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add($"--Kestrel:Endpoints:http:Url={address}");
        foreach (string s in settings) start.ArgumentList.Add(s);
        var process = Process.Start(start)!;
        var service = new ServiceProcess(process, address);
        process.OutputDataReceived += (_, e) => { lock (service._log) service._log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (service._log) service._log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited) throw new InvalidOperationException($"the search service exited with {process.ExitCode}: {service.Log}");
            try
            {
                if ((await service.Http.GetAsync("/health")).IsSuccessStatusCode) return service;
            }
            catch (HttpRequestException) { /* not listening yet */ }
            await Task.Delay(200);
        }
        service.Dispose();
        throw new TimeoutException($"the search service did not answer /health within 60 s: {service.Log}");
    }

    public void Dispose()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process.Dispose();
    }
}

public static class Json
{
    public static async Task<JsonElement> ReadAsync(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.Clone();
    }

    public static Task<HttpResponseMessage> PostAsync(HttpClient http, string url, object body, string? token = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(body) };
        if (token is not null) request.Headers.Add("cnclip-token", token);
        return http.SendAsync(request);
    }
}
