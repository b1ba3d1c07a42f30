// One version of a collection, loaded for searching: items, vectors and indexes, immutable once loaded. A writer makes
// a new version; whoever holds this one keeps searching it, consistently.
using System.Runtime.InteropServices;
using System.Text.Json;

namespace ChineseClip.Search;

public enum SearchTarget { Images, Texts }

public sealed class CollectionVersion : IDisposable
{
    /// <summary>Below this many items a search is exact unless told otherwise (the matrix product is fast and exact).</summary>
    public const int DefaultExactBelow = 20_000;

    CollectionVersion(string folder, CollectionManifest manifest, IReadOnlyList<ImageItem> images, IReadOnlyList<TextItem> texts,
        VectorIndex imageVectors, VectorIndex textVectors)
    {
        Folder = folder;
        Manifest = manifest;
        Images = images;
        Texts = texts;
        ImagesById = images.ToDictionary(i => i.Id);
        TextsById = texts.ToDictionary(t => t.Id);
        ImageVectors = imageVectors;
        TextVectors = textVectors;
    }

    /// <summary>The collection folder (not the version folder).</summary>
    public string Folder { get; }
    public CollectionManifest Manifest { get; }
    public string Name => Manifest.Name;
    public IReadOnlyList<ImageItem> Images { get; }
    public IReadOnlyList<TextItem> Texts { get; }
    public IReadOnlyDictionary<long, ImageItem> ImagesById { get; }
    public IReadOnlyDictionary<long, TextItem> TextsById { get; }
    public VectorIndex ImageVectors { get; }
    public VectorIndex TextVectors { get; }

    public VectorIndex Vectors(SearchTarget target) => target == SearchTarget.Images ? ImageVectors : TextVectors;

    /// <summary>Top-k of one L2-normalised query; exact when asked, when the target holds fewer than
    /// <paramref name="exactBelow"/> items, or when it has no HNSW index.</summary>
    public SearchHit[] Search(SearchTarget target, float[] query, int k, bool exact, int exactBelow = DefaultExactBelow)
    {
        VectorIndex index = Vectors(target);
        return index.Search(query, k, exact || index.Count < exactBelow);
    }

    /// <summary>Loads the version collection.json names.</summary>
    public static CollectionVersion Open(string dir)
    {
        CollectionManifest manifest = CollectionFiles.ReadManifest(dir);
        string version = CollectionFiles.VersionFolder(dir, manifest.Version);
        var images = ReadJsonl<ImageItem>(Path.Combine(version, CollectionFiles.Images));
        var texts = ReadJsonl<TextItem>(Path.Combine(version, CollectionFiles.Texts));
        VectorIndex? imageVectors = null;
        try
        {
            imageVectors = LoadVectors(version, CollectionFiles.ImageVectors, CollectionFiles.ImageIndex, images.Select(i => i.Id).ToArray(), manifest.Dimension, manifest.Hnsw);
            var textVectors = LoadVectors(version, CollectionFiles.TextVectors, CollectionFiles.TextIndex, texts.Select(t => t.Id).ToArray(), manifest.Dimension, manifest.Hnsw);
            return new CollectionVersion(Path.GetFullPath(dir), manifest, images, texts, imageVectors, textVectors);
        }
        catch
        {
            imageVectors?.Dispose();
            throw;
        }
    }

    static VectorIndex LoadVectors(string version, string vectorFile, string indexFile, long[] ids, int dimension, HnswSettings settings)
    {
        string path = Path.Combine(version, vectorFile);
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length != (long)ids.Length * dimension * sizeof(float))
            throw new InvalidDataException($"{path}: {bytes.Length} bytes, expected {ids.Length} x {dimension} float32 values");
        string hnswPath = Path.Combine(version, indexFile);
        HnswIndex? hnsw = File.Exists(hnswPath) ? HnswIndex.Load(hnswPath) : null;
        hnsw?.SetExpansionSearch(settings.ExpansionSearch); // not kept in the index file
        return VectorIndex.FromRows(ids, MemoryMarshal.Cast<byte, float>(bytes), dimension, hnsw);
    }

    internal static List<T> ReadJsonl<T>(string path)
    {
        var list = new List<T>();
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (text.Length == 0) continue;
            try
            {
                list.Add(JsonSerializer.Deserialize<T>(text, CollectionFiles.Json) ?? throw new JsonException("null"));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{line}: {e.Message}");
            }
        }
        return list;
    }

    public void Dispose()
    {
        ImageVectors.Dispose();
        TextVectors.Dispose();
    }
}
