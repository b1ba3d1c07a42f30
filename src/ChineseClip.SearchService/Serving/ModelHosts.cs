// The loaded models, one per distinct ModelInfo (checkpoint SHA-256, arch, vocab, context length), each with a batcher
// per tower. Collections embedded with the same model share it.
using ChineseClip.Search;
using ChineseClip.SearchService.Extensions;

namespace ChineseClip.SearchService.Serving;

public sealed class ModelHost : IDisposable
{
    public ModelHost(ClipEmbedder embedder, SearchOptions options)
    {
        Embedder = embedder;
        var window = TimeSpan.FromMilliseconds(options.BatchWindowMs);
        Texts = new TowerBatcher<string>(embedder.EmbedTexts, embedder.Dimension, options.MaxBatch, window);
        Images = new TowerBatcher<float[]>(embedder.EmbedPixels, embedder.Dimension, options.MaxBatch, window);
    }

    public ClipEmbedder Embedder { get; }
    public TowerBatcher<string> Texts { get; }
    /// <summary>Takes decoded pixels (ClipEmbedder.Pixels, done on the request's thread, so a bad image fails alone).</summary>
    public TowerBatcher<float[]> Images { get; }

    public void Dispose()
    {
        Texts.Dispose();
        Images.Dispose();
        Embedder.Dispose();
    }
}

public sealed class ModelHosts : IDisposable
{
    readonly IServiceProvider _services;

    public ModelHosts(IServiceProvider services)
    {
        _services = services;
        TorchSharp.torch.set_num_threads(services.Options().Threads);
    }

    readonly Dictionary<string, Lazy<ModelHost>> _hosts = new();
    readonly Lock _lock = new();

    static string Key(ModelInfo m) => $"{m.Sha256}|{m.Arch}|{m.Vocab}|{m.ContextLength}";

    /// <summary>The host of <paramref name="model"/>, loading it the first time (the checkpoint's SHA-256 is checked then).</summary>
    public ModelHost Get(ModelInfo model)
    {
        Lazy<ModelHost> host;
        lock (_lock)
        {
            if (!_hosts.TryGetValue(Key(model), out host!))
            {
                var options = _services.Options();
                _hosts[Key(model)] = host = new Lazy<ModelHost>(() =>
                    new ModelHost(ClipEmbedder.Load(model, options.Backend, options.MaxPixels,
                        settings: new EncoderSettings(Cache: options.OnnxCache ?? Path.Combine(options.Directory, ".onnx-cache"), Threads: options.Threads)), options));
            }
        }
        try
        {
            return host.Value;
        }
        catch
        {
            lock (_lock) _hosts.Remove(Key(model)); // a failed load is tried again next time
            throw;
        }
    }

    /// <summary>Unloads the models no collection in <paramref name="inUse"/> needs.</summary>
    public void Release(IEnumerable<ModelInfo> inUse)
    {
        var keep = inUse.Select(Key).ToHashSet();
        List<Lazy<ModelHost>> gone;
        lock (_lock)
        {
            gone = _hosts.Where(kv => !keep.Contains(kv.Key)).Select(kv => kv.Value).ToList();
            foreach (var key in _hosts.Keys.Where(k => !keep.Contains(k)).ToList()) _hosts.Remove(key);
        }
        foreach (var host in gone.Where(h => h.IsValueCreated)) host.Value.Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var host in _hosts.Values.Where(h => h.IsValueCreated)) host.Value.Dispose();
            _hosts.Clear();
        }
    }
}
