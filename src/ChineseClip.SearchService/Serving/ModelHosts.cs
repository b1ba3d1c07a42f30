// The loaded models, one per distinct ModelInfo (checkpoint SHA-256, arch, vocab, context length), each with a batcher
// per tower. Collections embedded with the same model share it.
using System.Collections.Concurrent;
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

    // Class vectors of /v1/classify by label and template set: the official set is 183 prompts per label, seconds of
    // text encoding on a CPU, and clients ask about the same labels again and again.
    const int MaxClassVectors = 4096;
    readonly ConcurrentDictionary<(string Label, string Templates), Task<float[]>> _classVectors = new();

    /// <summary>Zero-shot class vector of <paramref name="label"/>: the mean of its normalised prompt embeddings
    /// (each template's {} replaced by the label), normalised again, as the official zero-shot evaluation builds it.
    /// Cached per model; a failed computation is not kept.</summary>
    public Task<float[]> ClassVectorAsync(string label, IReadOnlyList<string> templates)
    {
        var key = (label, string.Join('\n', templates));
        if (_classVectors.TryGetValue(key, out var cached)) return cached;
        if (_classVectors.Count >= MaxClassVectors) _classVectors.Clear();
        var computed = _classVectors.GetOrAdd(key, _ => ComputeClassVector(label, templates));
        computed.ContinueWith(t => _classVectors.TryRemove(new KeyValuePair<(string, string), Task<float[]>>(key, t)),
            TaskContinuationOptions.NotOnRanToCompletion);
        return computed;
    }

    async Task<float[]> ComputeClassVector(string label, IReadOnlyList<string> templates)
    {
        var prompts = await Task.WhenAll(templates.Select(x => Texts.EmbedAsync(x.Replace("{}", label))));
        var mean = new double[Embedder.Dimension];
        foreach (float[] p in prompts)
            for (int i = 0; i < mean.Length; i++) mean[i] += p[i];
        double norm = Math.Sqrt(mean.Sum(x => x * x));
        return mean.Select(x => (float)(x / norm)).ToArray();
    }

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
        ChineseClip.Model.Runtime.TorchCpu.SetThreads(services.Options().Threads);
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
