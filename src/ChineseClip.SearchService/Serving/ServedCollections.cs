// The collections this service serves: one current version each, swapped atomically when a writer (add, delete,
// deploy) publishes a new one. A search takes the current version once and answers from it alone, so it sees the old
// version or the new one, never a mix. Old versions are disposed a while after the swap, when no search still holds them.
using System.Text.Json.Serialization;
using ChineseClip.Search;
using ChineseClip.SearchService.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChineseClip.SearchService.Serving;

/// <summary>A deploy of a collection: running, succeeded or failed, and what it deploys.</summary>
public sealed record DeployStatus
{
    [JsonPropertyName("state")] public required string State { get; init; }
    [JsonPropertyName("schedule")] public required string Schedule { get; init; }
    [JsonPropertyName("stage")] public required string Stage { get; init; }
    [JsonPropertyName("checkpoint")] public required string Checkpoint { get; init; }
    [JsonPropertyName("started")] public required DateTimeOffset Started { get; init; }
    [JsonPropertyName("finished")] public DateTimeOffset? Finished { get; init; }
    [JsonPropertyName("error")] public string? Error { get; init; }
    [JsonPropertyName("images_rejected")] public int ImagesRejected { get; init; }
}

public sealed class ServedCollection(string name, string folder)
{
    CollectionVersion? _current;

    public string Name { get; } = name;
    public string Folder { get; } = folder;
    public CollectionVersion? Current => Volatile.Read(ref _current);
    /// <summary>One writer at a time per collection.</summary>
    public SemaphoreSlim WriteLock { get; } = new(1, 1);
    public DeployStatus? Deploy { get; set; }

    /// <summary>Makes <paramref name="next"/> the version searches see; the previous one is returned (to dispose later).</summary>
    internal CollectionVersion? Swap(CollectionVersion next) => Interlocked.Exchange(ref _current, next);
}

public sealed class ServedCollections : IHealthCheck, IDisposable
{
    readonly Dictionary<string, ServedCollection> _collections = new(StringComparer.Ordinal);
    readonly Lock _lock = new();
    readonly ModelHosts _hosts;
    readonly ILogger<ServedCollections> _log;
    /// <summary>How long a replaced version stays alive for the searches that took it before the swap.</summary>
    readonly TimeSpan _grace;
    /// <summary>The model loads started with the service (an ONNX export the first time): waited for when it stops, so
    /// that none writes into its folder afterwards (a test's cleanup once raced an export still under way).</summary>
    readonly List<Task> _warming = [];

    public ServedCollections(IServiceProvider services, ModelHosts hosts, ILogger<ServedCollections> log)
    {
        _hosts = hosts;
        _log = log;
        _grace = TimeSpan.FromSeconds(services.Options().SwapGraceSeconds);
        Root = Path.GetFullPath(services.Options().Directory);
        System.IO.Directory.CreateDirectory(Root);
        foreach (string folder in System.IO.Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
        {
            if (!CollectionFiles.Exists(folder)) continue;
            var collection = new ServedCollection(Path.GetFileName(folder), folder);
            try
            {
                collection.Swap(CollectionVersion.Open(folder));
                _collections[collection.Name] = collection;
                var model = collection.Current!.Manifest.Model;
                _warming.Add(Task.Run(() => Warm(model))); // the first query should not pay for loading the model
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                _log.LogError("collection {Folder} is not served: {Error}", folder, e.Message);
            }
        }
    }

    void Warm(ModelInfo model)
    {
        try { _hosts.Get(model); }
        catch (Exception e) { _log.LogError("model {Checkpoint} did not load: {Error}", model.Checkpoint, e.Message); }
    }

    public string Root { get; }

    public IReadOnlyList<ServedCollection> All
    {
        get { lock (_lock) return _collections.Values.OrderBy(c => c.Name, StringComparer.Ordinal).ToList(); }
    }

    public ServedCollection? Find(string name)
    {
        lock (_lock) return _collections.GetValueOrDefault(name);
    }

    /// <summary>The collection <paramref name="name"/>, registered (without a version yet) when it is new.</summary>
    public ServedCollection GetOrAdd(string name)
    {
        if (name.Length == 0 || name.Length > 100 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) || name.StartsWith('.'))
            throw new ArgumentException($"collection name '{name}': use letters, digits, '-', '_' and '.'");
        lock (_lock)
        {
            if (!_collections.TryGetValue(name, out var c)) _collections[name] = c = new ServedCollection(name, Path.Combine(Root, name));
            return c;
        }
    }

    /// <summary>Loads what the collection's folder now names and serves it.</summary>
    public void Publish(ServedCollection collection)
    {
        var next = CollectionVersion.Open(collection.Folder);
        var old = collection.Swap(next);
        _ = Task.Run(async () =>
        {
            await Task.Delay(_grace).ConfigureAwait(false);
            old?.Dispose();
            _hosts.Release(All.Select(c => c.Current).OfType<CollectionVersion>().Select(v => v.Manifest.Model));
        });
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var all = All;
        return Task.FromResult(HealthCheckResult.Healthy($"{all.Count(c => c.Current is not null)} collection(s) served"));
    }

    public void Dispose()
    {
        if (!Task.WaitAll([.. _warming], TimeSpan.FromMinutes(2)))
            _log.LogWarning("stopping while a model is still loading");
        foreach (var c in All) c.Current?.Dispose();
    }
}
