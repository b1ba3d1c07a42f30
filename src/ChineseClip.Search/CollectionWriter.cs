// Publishes a new version of a collection: the version folder is written under a temporary name, renamed when
// complete, and only then does collection.json point at it (replaced atomically). Versions older than the previous
// one are removed afterwards.
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using ChineseClip.Model.Checkpoints;

namespace ChineseClip.Search;

/// <summary>What a version holds: items in vector order and their vectors (with HNSW indexes).</summary>
public sealed record CollectionContent(IReadOnlyList<ImageItem> Images, VectorIndex ImageVectors, IReadOnlyList<TextItem> Texts, VectorIndex TextVectors);

public static class CollectionWriter
{
    /// <summary>Writes <paramref name="content"/> as the collection's next version and returns its manifest.</summary>
    public static CollectionManifest Publish(string dir, string name, ModelInfo model, HnswSettings hnsw, CollectionContent content)
    {
        Directory.CreateDirectory(dir);
        int version = NextVersion(dir);
        string final = CollectionFiles.VersionFolder(dir, version);
        string temp = Path.Combine(dir, $".v{version}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            WriteJsonl(Path.Combine(temp, CollectionFiles.Images), content.Images);
            WriteJsonl(Path.Combine(temp, CollectionFiles.Texts), content.Texts);
            WriteVectors(Path.Combine(temp, CollectionFiles.ImageVectors), content.ImageVectors);
            WriteVectors(Path.Combine(temp, CollectionFiles.TextVectors), content.TextVectors);
            content.ImageVectors.Hnsw?.Save(Path.Combine(temp, CollectionFiles.ImageIndex));
            content.TextVectors.Hnsw?.Save(Path.Combine(temp, CollectionFiles.TextIndex));
            Directory.Move(temp, final);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { /* the original error matters more */ }
            throw;
        }
        var manifest = new CollectionManifest
        {
            Name = name, Version = version, Dimension = content.ImageVectors.Dimension, Count = content.Images.Count,
            Texts = content.Texts.Count, Model = model, Hnsw = hnsw, BuiltAt = DateTimeOffset.UtcNow,
        };
        AtomicFile.Write(Path.Combine(dir, CollectionManifest.FileName),
            s => s.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(manifest, IndentedJson))));
        RemoveOldVersions(dir, keep: [version, version - 1]);
        return manifest;
    }

    static readonly JsonSerializerOptions IndentedJson = new(CollectionFiles.Json) { WriteIndented = true };

    /// <summary>One above every version folder there (finished or not), so that a version number is never reused.</summary>
    static int NextVersion(string dir)
    {
        int max = 0;
        foreach (string entry in Directory.EnumerateDirectories(dir))
        {
            string name = Path.GetFileName(entry);
            string digits = name.StartsWith(".v") ? name[2..].Split('.')[0] : name.StartsWith('v') ? name[1..] : "";
            if (int.TryParse(digits, out int v)) max = Math.Max(max, v);
        }
        return max + 1;
    }

    static void RemoveOldVersions(string dir, int[] keep)
    {
        foreach (string entry in Directory.EnumerateDirectories(dir, "v*"))
            if (int.TryParse(Path.GetFileName(entry)[1..], out int v) && !keep.Contains(v))
                try { Directory.Delete(entry, recursive: true); } catch (IOException) { /* removed next time */ }
    }

    static void WriteJsonl<T>(string path, IEnumerable<T> items)
    {
        using var writer = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
        foreach (T item in items) writer.WriteLine(JsonSerializer.Serialize(item, CollectionFiles.Json));
    }

    static void WriteVectors(string path, VectorIndex vectors)
    {
        var rows = new float[vectors.Count * vectors.Dimension];
        vectors.CopyRows(rows);
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(MemoryMarshal.AsBytes(rows.AsSpan()));
        stream.Flush(flushToDisk: true);
    }
}
