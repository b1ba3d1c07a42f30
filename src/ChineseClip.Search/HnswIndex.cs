// The approximate index: USearch's HNSW graph (cosine metric), keyed by item id. Adds run on several threads.
using System.Reflection;
using System.Runtime.InteropServices;
using Cloud.Unum.USearch;

namespace ChineseClip.Search;

/// <summary>HNSW parameters: graph degree, the candidate list widths while adding and while searching, and how the
/// index stores its vectors: f32, or bf16 / i8 (USearch quantizes them; the graph is built and searched on the
/// quantized vectors, about 2.3x and 3.1x faster to build than f32 at 50,000 vectors, recall@10 0.995 and 0.86 on
/// clustered data: docs/search.md). Exact search always uses the stored float32 vectors.</summary>
public sealed record HnswSettings(int Connectivity = 16, int ExpansionAdd = 128, int ExpansionSearch = 64, string Quantization = "f32")
{
    public static readonly string[] Quantizations = ["f32", "bf16", "i8"];

    internal ScalarKind Scalar => Quantization switch
    {
        "f32" => ScalarKind.Float32,
        "bf16" => ScalarKind.BFloat16,
        "i8" => ScalarKind.Int8,
        _ => throw new ArgumentException($"HNSW quantization '{Quantization}': expected one of {string.Join(", ", Quantizations)}"),
    };
}

public sealed partial class HnswIndex : IDisposable
{
    readonly USearchIndex _index;
    // USearch keeps one search scratch slot per hardware thread and fails a search that finds none free ("Reserve
    // capacity ahead of searches!"): at most that many searches at once; the rest wait their turn.
    readonly SemaphoreSlim _searchSlots = new(Environment.ProcessorCount, Environment.ProcessorCount);

    HnswIndex(USearchIndex index) => _index = index;

    public static HnswIndex Create(int dimension, HnswSettings settings) =>
        new(new USearchIndex(MetricKind.Cos, settings.Scalar, (ulong)dimension, (ulong)settings.Connectivity,
            (ulong)settings.ExpansionAdd, (ulong)settings.ExpansionSearch, false));

    /// <summary>Loads a saved index into memory (a copy: the file may be replaced or deleted afterwards).</summary>
    public static HnswIndex Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: index file not found", path);
        return new(new USearchIndex(path, false));
    }

    public long Count => (long)_index.Size();

    /// <summary>Adds rows <paramref name="rows"/>(i) under keys[i] on <paramref name="threads"/> threads.</summary>
    public void Add(IReadOnlyList<long> keys, Func<int, float[]> rows, int threads)
    {
        if (keys.Count == 0) return;
        // USearch's C# binding grows the capacity inside each Add, which is not safe from several threads; reserving
        // the whole batch first (its C API, on the binding's handle) makes the concurrent adds only append, which the
        // native index supports (each call takes a free thread slot).
        // The native reserve sizes its per-thread scratch for the machine's hardware threads: no more adds at once.
        bool reserved = Reserve(_index.Size() + (ulong)keys.Count);
        int parallel = reserved ? Math.Clamp(threads, 1, Environment.ProcessorCount) : 1;
        Parallel.For(0, keys.Count, new ParallelOptions { MaxDegreeOfParallelism = parallel },
            i => _index.Add(unchecked((ulong)keys[i]), rows(i)));
    }

    public void Remove(long key) => _index.Remove(unchecked((ulong)key));

    /// <summary>The k nearest keys and their cosine similarity (1 - cosine distance), best first.</summary>
    public (long[] Keys, float[] Scores) Search(float[] query, int k)
    {
        int found;
        ulong[] keys;
        float[] distances;
        _searchSlots.Wait();
        try { found = _index.Search(query, k, out keys, out distances); }
        finally { _searchSlots.Release(); }
        var ids = new long[found];
        var scores = new float[found];
        for (int i = 0; i < found; i++)
        {
            ids[i] = unchecked((long)keys[i]);
            scores[i] = 1 - distances[i];
        }
        return (ids, scores);
    }

    public void Save(string path) => _index.Save(path);

    public void Dispose()
    {
        _index.Dispose();
        _searchSlots.Dispose();
    }

    /// <summary>Whether this USearch binding lets adds run on several threads (its native handle was found).</summary>
    internal static bool ParallelAdds => HandleField is not null;

    static readonly FieldInfo? HandleField = typeof(USearchIndex).GetField("_index", BindingFlags.NonPublic | BindingFlags.Instance);

    bool Reserve(ulong capacity)
    {
        if (HandleField?.GetValue(_index) is not IntPtr handle || handle == IntPtr.Zero) return false;
        usearch_reserve(handle, (UIntPtr)capacity, out IntPtr error);
        if (error != IntPtr.Zero) throw new USearchException($"USearch could not reserve {capacity} vectors: {Marshal.PtrToStringAnsi(error)}");
        return true;
    }

    /// <summary>Sets the candidate list width of later searches (USearch does not keep it in the saved file, so a loaded
    /// index starts from its default). Returns false when this binding's native handle was not found.</summary>
    public bool SetExpansionSearch(int expansion)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(expansion, 1);
        if (HandleField?.GetValue(_index) is not IntPtr handle || handle == IntPtr.Zero) return false;
        usearch_change_expansion_search(handle, (UIntPtr)expansion, out IntPtr error);
        if (error != IntPtr.Zero) throw new USearchException($"USearch could not set expansion_search {expansion}: {Marshal.PtrToStringAnsi(error)}");
        return true;
    }

    /// <summary>The candidate list width searches use now.</summary>
    public int ExpansionSearch =>
        HandleField?.GetValue(_index) is IntPtr handle && handle != IntPtr.Zero ? (int)usearch_expansion_search(handle, out _) : -1;

    [LibraryImport("libusearch_c")]
    private static partial void usearch_reserve(IntPtr index, UIntPtr capacity, out IntPtr error);

    [LibraryImport("libusearch_c")]
    private static partial void usearch_change_expansion_search(IntPtr index, UIntPtr expansion, out IntPtr error);

    [LibraryImport("libusearch_c")]
    private static partial UIntPtr usearch_expansion_search(IntPtr index, out IntPtr error);
}
