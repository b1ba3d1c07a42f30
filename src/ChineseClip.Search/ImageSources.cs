// Where a collection's images come from: a folder of images with same-name .txt captions (as convert-private-data reads
// them), the official {split}_imgs.tsv with {split}_texts.jsonl for captions, or a collection's own items (re-embedding).
using ChineseClip.Data.Formats;
using ChineseClip.Data.Private;

namespace ChineseClip.Search;

/// <summary>A caption; its id is given by the source (texts.jsonl) or derived from the image id and the text.</summary>
public sealed record SourceCaption(long? Id, string Text);

/// <param name="Source">The image file, or the tsv holding it.</param>
/// <param name="TsvId">The image's id in the tsv (it becomes the item id).</param>
/// <param name="Where">How errors name the image (a path, or tsv:line: image id).</param>
/// <param name="Read">The encoded image (read when it is processed).</param>
/// <param name="Id">The item id, when the source fixes it (else the tsv id, else one derived from the image's bytes).</param>
public sealed record SourceImage(string Source, long? TsvId, string Where, Func<byte[]> Read, IReadOnlyList<SourceCaption> Captions, long? Id = null)
{
    /// <summary>The same image in another run: the same file, or the same id in the same tsv.</summary>
    public string Key => TsvId is long id ? $"{Source}#{id}" : Source;
    public static string KeyOf(ImageItem item) => item.TsvId is long id ? $"{item.Source}#{id}" : item.Source;
}

/// <summary>Images to process, and how many there are (for the progress bar).</summary>
public sealed record SourceSet(int Count, IEnumerable<SourceImage> Images);

public static class ImageSources
{
    /// <summary><paramref name="input"/> is a folder (captions from .txt files, optional) or a {split}_imgs.tsv;
    /// <paramref name="texts"/> a {split}_texts.jsonl for a tsv (default: the one beside it, when there is one).</summary>
    public static SourceSet Open(string input, string? texts, Action<string> reject)
    {
        if (Directory.Exists(input))
        {
            if (texts is not null) throw new ArgumentException($"--texts {texts}: captions of a folder come from its .txt files");
            return FromFolder(input, reject);
        }
        if (File.Exists(input)) return FromTsv(input, texts ?? DefaultTexts(input), reject);
        throw new FileNotFoundException($"{input}: no such folder or tsv file", input);
    }

    static string? DefaultTexts(string tsv)
    {
        string name = Path.GetFileName(tsv);
        if (!name.EndsWith("_imgs.tsv", StringComparison.Ordinal)) return null;
        string candidate = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tsv))!, name[..^"_imgs.tsv".Length] + "_texts.jsonl");
        return File.Exists(candidate) ? candidate : null;
    }

    public static SourceSet FromFolder(string folder, Action<string> reject)
    {
        var rejects = new List<Reject>();
        var images = CaptionedImageFolder.Read(folder, skipFolder: null, requireCaptions: false, rejects, out _);
        foreach (var r in rejects) reject($"{r.Item}: {r.Reason}");
        var sources = images.Select(i =>
        {
            string path = Path.GetFullPath(i.Path);
            var captions = i.Captions.Select(c => c.Trim()).Where(c => c.Length > 0).Distinct().Select(c => new SourceCaption(null, c)).ToList();
            return new SourceImage(path, null, path, () => File.ReadAllBytes(path), captions);
        }).ToList();
        return new SourceSet(sources.Count, sources);
    }

    public static SourceSet FromTsv(string tsv, string? textsJsonl, Action<string> reject)
    {
        string path = Path.GetFullPath(tsv);
        var captions = new Dictionary<long, List<SourceCaption>>();
        if (textsJsonl is not null)
            foreach (var t in TextJsonl.Read(textsJsonl, e => reject(e.ToString())))
                foreach (long image in t.ImageIds.Distinct())
                {
                    if (!captions.TryGetValue(image, out var list)) captions[image] = list = [];
                    list.Add(new SourceCaption(t.TextId, t.Text));
                }
        int count = ImageTsv.ReadIds(path, _ => { }).Count();
        var images = ImageTsv.Read(path, e => reject(e.ToString())).Select(r =>
        {
            byte[] bytes = r.Bytes;
            return new SourceImage(path, r.ImageId, $"{path}:{r.Line}: image {r.ImageId}", () => bytes,
                captions.GetValueOrDefault(r.ImageId) ?? []);
        });
        return new SourceSet(count, images);
    }

    /// <summary>The images of a collection version, read again from their sources (to embed them with another model).</summary>
    public static SourceSet FromCollection(CollectionVersion version, Action<string> reject)
    {
        var captions = version.Texts.GroupBy(t => t.ImageId).ToDictionary(g => g.Key, g => g.Select(t => new SourceCaption(t.Id, t.Text)).ToList());
        IEnumerable<SourceImage> Read()
        {
            foreach (var group in version.Images.GroupBy(i => i.TsvId is null ? null : i.Source))
            {
                if (group.Key is null)
                {
                    foreach (var item in group)
                        yield return new SourceImage(item.Source, null, item.Source, () => File.ReadAllBytes(item.Source), captions.GetValueOrDefault(item.Id) ?? [], item.Id);
                    continue;
                }
                var wanted = group.Select(i => i.TsvId!.Value).ToHashSet();
                var seen = new HashSet<long>();
                foreach (var r in ImageTsv.ReadWhere(group.Key, wanted.Contains, e => reject(e.ToString())))
                {
                    if (!seen.Add(r.ImageId)) continue;
                    byte[] bytes = r.Bytes;
                    yield return new SourceImage(group.Key, r.ImageId, $"{group.Key}:{r.Line}: image {r.ImageId}", () => bytes, captions.GetValueOrDefault(r.ImageId) ?? []);
                }
                foreach (long missing in wanted.Except(seen)) reject($"{group.Key}: image {missing} is no longer there");
            }
        }
        return new SourceSet(version.Images.Count, Read());
    }
}
