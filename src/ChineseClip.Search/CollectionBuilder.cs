// Makes new versions of a collection: add images (what is already there is skipped), remove items, or embed everything
// again with another model. Images are read, decoded and thumbnailed on several threads, embedded in batches; an image
// that cannot be used is reported with its reason and skipped.
using System.Collections.Concurrent;
using System.Security.Cryptography;
using ChineseClip.Data.Private;
using ChineseClip.Model.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ChineseClip.Search;

public sealed record BuildOptions
{
    public int BatchSize { get; init; } = 32;
    public int Threads { get; init; } = Math.Max(1, Environment.ProcessorCount);
    public HnswSettings Hnsw { get; init; } = new();
    /// <summary>Longest side of the thumbnails kept for the page.</summary>
    public int ThumbnailSize { get; init; } = 256;
}

/// <summary>What a build did: the manifest it published (null when nothing changed), images added, rejected, skipped.</summary>
public sealed record BuildResult(CollectionManifest? Manifest, int Added, int Rejected, int AlreadyThere);

public static class CollectionBuilder
{
    /// <summary>Adds the images of <paramref name="sources"/> that the collection does not hold yet, as a new version.
    /// <paramref name="progress"/> gets the number of images processed so far.</summary>
    public static BuildResult Add(string dir, string name, ClipEmbedder embedder, SourceSet sources, BuildOptions options,
        Action<string> reject, Action<int>? progress = null, CollectionVersion? current = null)
    {
        if (current is not null && !current.Manifest.Model.SameModel(embedder.Model))
            throw new InvalidDataException($"{dir}: the collection was embedded with {current.Manifest.Model.Checkpoint} " +
                $"(SHA-256 {current.Manifest.Model.Sha256[..12]}, {current.Manifest.Model.Arch}); embedding with another model needs a deploy");
        var present = current?.Images.Select(SourceImage.KeyOf).ToHashSet() ?? [];
        int already = 0;
        var todo = sources.Images.Where(s =>
        {
            if (!present.Contains(s.Key)) return true;
            already++;
            return false;
        });
        var fresh = Embed(dir, embedder, todo, options, current, reject, progress, out int rejected);
        if (fresh.Images.Count == 0 && current is not null) return new BuildResult(null, 0, rejected, already);
        var content = Combine(current, fresh, embedder.Dimension, options, removed: null);
        var manifest = CollectionWriter.Publish(dir, name, embedder.Model, options.Hnsw, content);
        content.ImageVectors.Dispose();
        content.TextVectors.Dispose();
        return new BuildResult(manifest, fresh.Images.Count, rejected, already);
    }

    /// <summary>A new version without the images <paramref name="ids"/> (and their captions).</summary>
    public static CollectionManifest Remove(CollectionVersion current, IReadOnlySet<long> ids, BuildOptions options)
    {
        var empty = new Embedded([], [], [], []);
        var content = Combine(current, empty, current.Manifest.Dimension, options, ids);
        var manifest = CollectionWriter.Publish(current.Folder, current.Name, current.Manifest.Model, current.Manifest.Hnsw, content);
        content.ImageVectors.Dispose();
        content.TextVectors.Dispose();
        return manifest;
    }

    /// <summary>Every image and caption of <paramref name="current"/> embedded again with <paramref name="embedder"/>'s
    /// model, as a new version (items keep their ids).</summary>
    public static BuildResult Reembed(CollectionVersion current, ClipEmbedder embedder, BuildOptions options, Action<string> reject, Action<int>? progress = null)
    {
        var fresh = Embed(current.Folder, embedder, ImageSources.FromCollection(current, reject).Images, options, null, reject, progress, out int rejected);
        var content = Combine(null, fresh, embedder.Dimension, options, removed: null);
        var manifest = CollectionWriter.Publish(current.Folder, current.Name, embedder.Model, options.Hnsw, content);
        content.ImageVectors.Dispose();
        content.TextVectors.Dispose();
        return new BuildResult(manifest, fresh.Images.Count, rejected, 0);
    }

    sealed record Embedded(List<ImageItem> Images, List<float[]> ImageVectors, List<TextItem> Texts, List<float[]> TextVectors);

    sealed record Prepared(SourceImage Source, float[]? Pixels, string? Hash, string? Problem);

    static Embedded Embed(string dir, ClipEmbedder embedder, IEnumerable<SourceImage> sources, BuildOptions options,
        CollectionVersion? current, Action<string> reject, Action<int>? progress, out int rejected)
    {
        var usedImageIds = current?.Images.Select(i => i.Id).ToHashSet() ?? [];
        var usedTextIds = current?.Texts.Select(t => t.Id).ToHashSet() ?? [];
        var result = new Embedded([], [], [], []);
        Directory.CreateDirectory(Path.Combine(dir, CollectionFiles.Thumbnails));
        int done = 0, bad = 0;
        foreach (var chunk in sources.Chunk(Math.Max(1, options.BatchSize)))
        {
            var prepared = new Prepared[chunk.Length];
            Parallel.For(0, chunk.Length, new ParallelOptions { MaxDegreeOfParallelism = options.Threads }, i => prepared[i] = Prepare(chunk[i], embedder));
            var good = new List<(ImageItem Item, float[] Pixels, SourceImage Source)>();
            foreach (var p in prepared)
            {
                if (p.Problem is not null)
                {
                    bad++;
                    reject($"{p.Source.Where}: {p.Problem}");
                    continue;
                }
                long id = p.Source.Id ?? p.Source.TsvId ?? StableIds.Next(p.Hash!, usedImageIds);
                usedImageIds.Add(id);
                var item = new ImageItem
                {
                    Id = id, Source = p.Source.Source, TsvId = p.Source.TsvId, Captions = p.Source.Captions.Select(c => c.Text).ToList(),
                };
                good.Add((item, p.Pixels!, p.Source));
                foreach (var caption in p.Source.Captions)
                {
                    long textId = caption.Id ?? StableIds.Next($"{id}\n{caption.Text}", usedTextIds);
                    usedTextIds.Add(textId);
                    result.Texts.Add(new TextItem { Id = textId, Text = caption.Text, ImageId = id });
                }
            }
            if (good.Count > 0)
            {
                float[] vectors = embedder.EmbedPixels(good.Select(g => g.Pixels).ToList());
                for (int i = 0; i < good.Count; i++)
                {
                    result.Images.Add(good[i].Item);
                    result.ImageVectors.Add(vectors.AsSpan(i * embedder.Dimension, embedder.Dimension).ToArray());
                }
                Parallel.For(0, good.Count, new ParallelOptions { MaxDegreeOfParallelism = options.Threads },
                    i => WriteThumbnail(dir, good[i].Item.Id, good[i].Source, options.ThumbnailSize));
            }
            done += chunk.Length;
            progress?.Invoke(done);
        }
        foreach (var batch in result.Texts.Chunk(64))
        {
            float[] vectors = embedder.EmbedTexts(batch.Select(t => t.Text).ToList());
            for (int i = 0; i < batch.Length; i++) result.TextVectors.Add(vectors.AsSpan(i * embedder.Dimension, embedder.Dimension).ToArray());
        }
        rejected = bad;
        return result;
    }

    static Prepared Prepare(SourceImage source, ClipEmbedder embedder)
    {
        byte[] bytes;
        try { bytes = source.Read(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Prepared(source, null, null, e is FileNotFoundException or DirectoryNotFoundException ? "no such file" : $"unreadable: {e.Message}");
        }
        if (bytes.Length == 0) return new Prepared(source, null, null, "empty file");
        try
        {
            float[] pixels = embedder.Pixels(bytes);
            string? hash = source.Id is null && source.TsvId is null ? Convert.ToHexString(SHA256.HashData(bytes)) : null;
            return new Prepared(source, pixels, hash, null);
        }
        catch (InvalidImageException e)
        {
            return new Prepared(source, null, null, e.Message);
        }
    }

    /// <summary>A JPEG of at most <paramref name="size"/> px on the longer side, for the page; kept when already there.
    /// The image passed the transform's checks (pixel limit, truncation) before this second decode.</summary>
    static void WriteThumbnail(string dir, long id, SourceImage source, int size)
    {
        string path = CollectionFiles.Thumbnail(dir, id);
        if (File.Exists(path)) return;
        try
        {
            using var image = Image.Load<Rgb24>(source.Read());
            if (image.Width > size || image.Height > size)
                image.Mutate(x => x.Resize(new ResizeOptions { Mode = ResizeMode.Max, Size = new Size(size, size) }));
            Model.Checkpoints.AtomicFile.Write(path, s => image.SaveAsJpeg(s));
        }
        catch (Exception e) when (e is ImageFormatException or UnknownImageFormatException or IOException or InvalidImageContentException)
        {
            // No thumbnail: the page shows the item without one; the item itself is fine.
        }
    }

    /// <summary>The current content (less <paramref name="removed"/>) followed by the fresh items; the HNSW indexes are
    /// the current ones (loaded again from disk, so the served copy is untouched) with the changes applied.</summary>
    static CollectionContent Combine(CollectionVersion? current, Embedded fresh, int dim, BuildOptions options, IReadOnlySet<long>? removed)
    {
        bool Keep(long id) => removed is null || !removed.Contains(id);
        var images = (current?.Images.Where(i => Keep(i.Id)) ?? []).Concat(fresh.Images).ToList();
        var texts = (current?.Texts.Where(t => Keep(t.ImageId)) ?? []).Concat(fresh.Texts).ToList();
        var imageIndex = Merge(current, SearchTarget.Images, images.Select(i => i.Id).ToArray(), fresh.ImageVectors, fresh.Images.Select(i => i.Id).ToList(),
            current?.Images.Where(i => !Keep(i.Id)).Select(i => i.Id).ToList() ?? [], dim, options);
        var textIndex = Merge(current, SearchTarget.Texts, texts.Select(t => t.Id).ToArray(), fresh.TextVectors, fresh.Texts.Select(t => t.Id).ToList(),
            current?.Texts.Where(t => !Keep(t.ImageId)).Select(t => t.Id).ToList() ?? [], dim, options);
        return new CollectionContent(images, imageIndex, texts, textIndex);
    }

    static VectorIndex Merge(CollectionVersion? current, SearchTarget target, long[] ids, List<float[]> freshRows, List<long> freshIds,
        List<long> removedIds, int dim, BuildOptions options)
    {
        var rows = new float[ids.Length * dim];
        int offset = 0;
        if (current is not null)
        {
            VectorIndex old = current.Vectors(target);
            var removedSet = removedIds.ToHashSet();
            var oldRows = new float[old.Count * dim];
            old.CopyRows(oldRows);
            for (int r = 0; r < old.Count; r++)
            {
                if (removedSet.Contains(old.Ids[r])) continue;
                oldRows.AsSpan(r * dim, dim).CopyTo(rows.AsSpan(offset));
                offset += dim;
            }
        }
        foreach (float[] row in freshRows)
        {
            row.CopyTo(rows, offset);
            offset += dim;
        }
        string? oldIndex = current is null ? null : Path.Combine(CollectionFiles.VersionFolder(current.Folder, current.Manifest.Version),
            target == SearchTarget.Images ? CollectionFiles.ImageIndex : CollectionFiles.TextIndex);
        HnswIndex hnsw = oldIndex is not null && File.Exists(oldIndex) ? HnswIndex.Load(oldIndex) : HnswIndex.Create(dim, options.Hnsw);
        foreach (long id in removedIds) hnsw.Remove(id);
        hnsw.Add(freshIds, i => freshRows[i], options.Threads);
        return VectorIndex.FromRows(ids, rows, dim, hnsw);
    }
}
