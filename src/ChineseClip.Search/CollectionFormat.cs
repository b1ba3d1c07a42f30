// A collection on disk is a folder:
//   collection.json          the manifest (name, dimension, counts, model, built_at) naming the version folder served
//   v{N}/images.jsonl        {"id", "source", "tsv_id"?, "captions"} per image, in vector order
//   v{N}/texts.jsonl         {"id", "text", "image_id"} per caption, in vector order
//   v{N}/images.f32, texts.f32   the L2-normalised vectors, float32 little-endian, row-major
//   v{N}/images.usearch, texts.usearch   the HNSW indexes (USearch)
//   thumbs/{id}.jpg          image thumbnails (shared by the versions)
//   uploads/{id}.{ext}       images added through the service (their source)
// A version folder is written under a temporary name and renamed when complete; collection.json is then replaced
// atomically. A reader follows collection.json, so it sees the old version or the new one, never half of one.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ChineseClip.Search;

public sealed record ImageItem
{
    [JsonPropertyName("id")] public required long Id { get; init; }
    /// <summary>The image file, or the official {split}_imgs.tsv that holds it (then <see cref="TsvId"/> is its id there).</summary>
    [JsonPropertyName("source")] public required string Source { get; init; }
    [JsonPropertyName("tsv_id")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? TsvId { get; init; }
    [JsonPropertyName("captions")] public IReadOnlyList<string> Captions { get; init; } = [];
}

public sealed record TextItem
{
    [JsonPropertyName("id")] public required long Id { get; init; }
    [JsonPropertyName("text")] public required string Text { get; init; }
    /// <summary>The image the text describes.</summary>
    [JsonPropertyName("image_id")] public required long ImageId { get; init; }
}

public sealed record CollectionManifest
{
    public const string FileName = "collection.json";

    [JsonPropertyName("name")] public required string Name { get; init; }
    /// <summary>The version folder served: v{Version}.</summary>
    [JsonPropertyName("version")] public required int Version { get; init; }
    [JsonPropertyName("dimension")] public required int Dimension { get; init; }
    /// <summary>Images in the collection.</summary>
    [JsonPropertyName("count")] public required int Count { get; init; }
    [JsonPropertyName("texts")] public required int Texts { get; init; }
    [JsonPropertyName("model")] public required ModelInfo Model { get; init; }
    [JsonPropertyName("hnsw")] public required HnswSettings Hnsw { get; init; }
    [JsonPropertyName("built_at")] public required DateTimeOffset BuiltAt { get; init; }
}

/// <summary>Names and JSON settings of the files in a collection folder.</summary>
public static class CollectionFiles
{
    public const string Images = "images.jsonl", Texts = "texts.jsonl";
    public const string ImageVectors = "images.f32", TextVectors = "texts.f32";
    public const string ImageIndex = "images.usearch", TextIndex = "texts.usearch";
    public const string Thumbnails = "thumbs", Uploads = "uploads";

    public static readonly JsonSerializerOptions Json = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public static string VersionFolder(string dir, int version) => Path.Combine(dir, $"v{version}");
    public static string Thumbnail(string dir, long id) => Path.Combine(dir, Thumbnails, $"{id}.jpg");
    public static bool Exists(string dir) => File.Exists(Path.Combine(dir, CollectionManifest.FileName));

    /// <summary>The manifest of the collection in <paramref name="dir"/>.</summary>
    public static CollectionManifest ReadManifest(string dir)
    {
        string path = Path.Combine(dir, CollectionManifest.FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir}: not a collection (no {CollectionManifest.FileName})", path);
        try
        {
            return JsonSerializer.Deserialize<CollectionManifest>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: empty manifest");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}");
        }
    }
}
