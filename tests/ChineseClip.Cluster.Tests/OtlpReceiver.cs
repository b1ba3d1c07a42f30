using System.Globalization;
using System.IO.Compression;
using System.Net;
using ChineseClip.Cluster.Tests.Otlp;

namespace ChineseClip.Cluster.Tests;

/// <summary>An OTLP/HTTP endpoint (binary protobuf) for the services under test, standing in for the dashboard that
/// Aspire.Hosting.Testing does not start: it keeps every span it is sent and answers the metric and log exports
/// without reading them. Point a service at it with <see cref="Environment"/>.</summary>
public sealed class OtlpReceiver : IDisposable
{
    /// <summary>A received span; ids in lower-case hex ("" for no parent), attribute values as text.</summary>
    public sealed record Span(string Service, string Scope, string Name, string TraceId, string SpanId, string ParentSpanId,
        IReadOnlyDictionary<string, string> Attributes)
    {
        public string Attribute(string key) => Attributes.TryGetValue(key, out string? value) ? value : "";
    }

    readonly HttpListener _listener = new();
    readonly List<Span> _spans = [];
    readonly Task _loop;

    public string Endpoint { get; }

    public OtlpReceiver()
    {
        Endpoint = $"http://127.0.0.1:{ServiceProcesses.FreePort()}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    /// <summary>The environment that sends a service's telemetry here (the service defaults export over OTLP when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set), exported half a second after a span ends.</summary>
    public IReadOnlyList<(string Key, string Value)> Environment =>
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", Endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "500"),
    ];

    public IReadOnlyList<Span> Spans
    {
        get { lock (_spans) return [.. _spans]; }
    }

    /// <summary>The spans received once <paramref name="enough"/> holds of them, or when <paramref name="patience"/> runs
    /// out (then the assertions on what came say what is missing).</summary>
    public async Task<IReadOnlyList<Span>> SpansWhen(Func<IReadOnlyList<Span>, bool> enough, TimeSpan patience)
    {
        var deadline = DateTime.UtcNow + patience;
        while (true)
        {
            var spans = Spans;
            if (enough(spans) || DateTime.UtcNow > deadline) return spans;
            await Task.Delay(250);
        }
    }

    async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }
            try
            {
                if (context.Request.Url?.AbsolutePath == "/v1/traces") Keep(Read(context.Request));
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
            }
            catch (Exception)
            {
                context.Response.StatusCode = 400;
            }
            context.Response.Close();
        }
    }

    static ExportTraceRequest Read(HttpListenerRequest request)
    {
        Stream body = request.InputStream;
        if (string.Equals(request.Headers["Content-Encoding"], "gzip", StringComparison.OrdinalIgnoreCase)) body = new GZipStream(body, CompressionMode.Decompress);
        using var buffer = new MemoryStream();
        body.CopyTo(buffer);
        return ExportTraceRequest.Parser.ParseFrom(buffer.ToArray());
    }

    void Keep(ExportTraceRequest export)
    {
        var received = new List<Span>();
        foreach (var resource in export.ResourceSpans)
        {
            string service = Text(resource.Resource?.Attributes ?? []).GetValueOrDefault("service.name", "");
            foreach (var scope in resource.ScopeSpans)
                foreach (var s in scope.Spans)
                    received.Add(new Span(service, scope.Scope?.Name ?? "", s.Name, Convert.ToHexStringLower(s.TraceId.Span),
                        Convert.ToHexStringLower(s.SpanId.Span), Convert.ToHexStringLower(s.ParentSpanId.Span), Text(s.Attributes)));
        }
        lock (_spans) _spans.AddRange(received);
    }

    static Dictionary<string, string> Text(IEnumerable<KeyValue> attributes)
    {
        var text = new Dictionary<string, string>();
        foreach (var a in attributes)
            text[a.Key] = a.Value?.ValueCase switch
            {
                AnyValue.ValueOneofCase.StringValue => a.Value.StringValue,
                AnyValue.ValueOneofCase.BoolValue => a.Value.BoolValue ? "true" : "false",
                AnyValue.ValueOneofCase.IntValue => a.Value.IntValue.ToString(CultureInfo.InvariantCulture),
                AnyValue.ValueOneofCase.DoubleValue => a.Value.DoubleValue.ToString(CultureInfo.InvariantCulture),
                _ => "",
            };
        return text;
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
