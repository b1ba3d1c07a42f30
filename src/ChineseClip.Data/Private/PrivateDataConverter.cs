// Turns a user's own images and captions into the official layout ({split}_imgs.tsv, {split}_texts.jsonl), the step
// the official project leaves to its users. Input: a folder tree of images with same-name .txt captions (one caption
// per line), or a manifest (.jsonl with "image" and "caption"/"captions", or .csv with image,caption columns, or a
// header row naming them among others). Captions are UTF-8, or UTF-16 with a byte-order mark.
// Every image is decoded once; identical images (same bytes) are merged; ids come from content, so they are stable
// across runs; the split is by image and deterministic for a seed. Nothing is dropped silently: every rejected item
// is written to rejects.jsonl with its reason, and one bad file never stops the run.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Imaging;

namespace ChineseClip.Data.Private;

/// <summary>ImagesSeen = ImagesKept + DuplicateImagesMerged + ImagesRejected; Rejected = ImagesRejected + OtherRejected
/// (files that are no images, unused caption files, manifest lines, folders).</summary>
public sealed record PrivateDataSummary(int ImagesSeen, int ImagesKept, int DuplicateImagesMerged, int Captions, int Rejected,
    int ImagesRejected, int OtherRejected,
    IReadOnlyDictionary<string, (int Images, int Texts)> Splits);

/// <param name="Image">The reject is an image (a folder's image file, or a manifest's image path) that was not kept.</param>
public sealed record Reject(string Item, string Reason, bool Image = false);

public static class PrivateDataConverter
{
    static readonly string[] SplitNames = ["train", "valid", "test"];
    static UTF8Encoding StrictUtf8 => CaptionedImageFolder.StrictUtf8;

    sealed class Item
    {
        public required string Path { get; init; }
        public List<string> Captions { get; } = new();
        /// <summary>The manifest that names the image, and its lines that do; null for a folder's image.</summary>
        public string? Manifest { get; init; }
        public List<int> Lines { get; } = new();

        /// <summary>A rejection naming the image, or for a manifest its first line (the image path in the reason).</summary>
        public Reject Rejected(string reason)
        {
            if (Manifest is null) return new(Path, reason, Image: true);
            string also = Lines.Count switch { 1 => "", 2 => $" (also on line {Lines[1]})", _ => $" (also on lines {string.Join(", ", Lines.Skip(1))})" };
            return new($"{Manifest}:{Lines[0]}", $"{Path}: {reason}{also}", Image: true);
        }
    }

    /// <param name="progress">told (items checked, items) as each image or manifest item is read and checked</param>
    public static PrivateDataSummary Convert(string input, string outputDir, double[] fractions, int seed, long maxPixels = ImageTransform.DefaultMaxPixels,
        IProgress<(int Done, int Total)>? progress = null)
    {
        if (fractions.Length != 3 || fractions.Any(f => f < 0) || Math.Abs(fractions.Sum() - 1) > 1e-6)
            throw new ArgumentException($"--splits {string.Join(",", fractions)}: three non-negative fractions summing to 1 are required");
        var rejects = new List<Reject>();
        int imagesSeen = 0;
        List<Item> items = Directory.Exists(input) ? FromFolder(input, outputDir, rejects, out imagesSeen)
            : File.Exists(input) ? FromManifest(input, rejects, out imagesSeen)
            : throw new FileNotFoundException($"{input}: no such folder or manifest", input);

        // Validate, hash and merge identical images; captions are kept in first-seen order without repeats.
        var transform = new ImageTransform(8, maxPixels);
        var byHash = new Dictionary<string, (byte[] Bytes, List<string> Captions, string FirstPath)>();
        int duplicates = 0, checkedItems = 0;
        foreach (var item in items)
        {
            progress?.Report((checkedItems++, items.Count));
            if (ReadImage(item.Path, out byte[] bytes) is { } unreadable) { rejects.Add(item.Rejected(unreadable)); continue; }
            if (bytes.Length == 0) { rejects.Add(item.Rejected("empty file")); continue; }
            try { transform.ToRgbBytes(bytes); }
            catch (InvalidImageException e) { rejects.Add(item.Rejected(e.Message)); continue; }
            var captions = item.Captions.Select(c => c.Trim()).Where(c => c.Length > 0).ToList();
            if (captions.Count == 0) { rejects.Add(item.Rejected("no caption")); continue; }
            string hash = System.Convert.ToHexString(SHA256.HashData(bytes));
            if (byHash.TryGetValue(hash, out var existing))
            {
                duplicates++;
                foreach (string c in captions) if (!existing.Captions.Contains(c)) existing.Captions.Add(c);
                continue;
            }
            byHash[hash] = (bytes, captions.Distinct().ToList(), item.Path);
        }
        progress?.Report((items.Count, items.Count));

        // Stable ids from content; the split is drawn per image from (seed, id), so adding images moves no others.
        var usedIds = new HashSet<long>();
        var images = byHash.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
        {
            long id = StableIds.Next(kv.Key, usedIds);
            return (Id: id, kv.Value.Bytes, kv.Value.Captions, Split: PickSplit(seed, id, fractions));
        }).ToList();

        Directory.CreateDirectory(outputDir);
        var splitCounts = new Dictionary<string, (int, int)>();
        var json = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        for (int s = 0; s < 3; s++)
        {
            var mine = images.Where(i => i.Split == s).OrderBy(i => i.Id).ToList();
            int texts = 0;
            AtomicFile.Write(Path.Combine(outputDir, $"{SplitNames[s]}_imgs.tsv"), stream =>
            {
                using var w = new StreamWriter(stream, StrictUtf8, 1 << 16, leaveOpen: true) { NewLine = "\n" };
                foreach (var image in mine) w.WriteLine($"{image.Id}\t{Base64.Encode(image.Bytes)}");
            });
            AtomicFile.Write(Path.Combine(outputDir, $"{SplitNames[s]}_texts.jsonl"), stream =>
            {
                using var w = new StreamWriter(stream, StrictUtf8, 1 << 16, leaveOpen: true) { NewLine = "\n" };
                foreach (var image in mine)
                    foreach (string caption in image.Captions)
                    {
                        long textId = StableIds.Next(image.Id.ToString(CultureInfo.InvariantCulture) + "\n" + caption, usedIds);
                        w.WriteLine(JsonSerializer.Serialize(new { text_id = textId, text = caption, image_ids = new[] { image.Id } }, json));
                        texts++;
                    }
            });
            splitCounts[SplitNames[s]] = (mine.Count, texts);
        }
        AtomicFile.Write(Path.Combine(outputDir, "rejects.jsonl"), stream =>
        {
            using var w = new StreamWriter(stream, StrictUtf8, 1 << 16, leaveOpen: true) { NewLine = "\n" };
            foreach (var r in rejects) w.WriteLine(JsonSerializer.Serialize(new { item = r.Item, reason = r.Reason }, json));
        });
        int imagesRejected = rejects.Count(r => r.Image);
        var summary = new PrivateDataSummary(imagesSeen, images.Count, duplicates, images.Sum(i => i.Captions.Count), rejects.Count,
            imagesRejected, rejects.Count - imagesRejected, splitCounts);
        AtomicFile.Write(Path.Combine(outputDir, "summary.json"), stream => stream.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            input, images_seen = summary.ImagesSeen, images_kept = summary.ImagesKept, duplicate_images_merged = duplicates,
            captions = summary.Captions, rejected = summary.Rejected, images_rejected = imagesRejected, other_rejected = summary.OtherRejected, seed, splits = splitCounts.ToDictionary(kv => kv.Key, kv => new { images = kv.Value.Item1, texts = kv.Value.Item2 }),
        }, json))));
        return summary;
    }

    /// <summary>Why the file cannot be read, or null with its bytes.</summary>
    static string? ReadImage(string path, out byte[] bytes)
    {
        bytes = [];
        try
        {
            bytes = File.ReadAllBytes(path);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Directory.Exists(path) ? "a folder, not an image file"
                : e is FileNotFoundException or DirectoryNotFoundException ? "no such file"
                : $"unreadable: {e.Message}";
        }
    }

    static int PickSplit(int seed, long id, double[] fractions)
    {
        double u = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}:{id}")), 0) / (double)ulong.MaxValue;
        return u < fractions[0] ? 0 : u < fractions[0] + fractions[1] ? 1 : 2;
    }

    static List<Item> FromFolder(string root, string outputDir, List<Reject> rejects, out int imagesSeen)
    {
        var items = new List<Item>();
        foreach (var image in CaptionedImageFolder.Read(root, outputDir, requireCaptions: true, rejects, out imagesSeen))
        {
            var item = new Item { Path = image.Path };
            item.Captions.AddRange(image.Captions);
            items.Add(item);
        }
        return items;
    }

    static List<Item> FromManifest(string manifest, List<Reject> rejects, out int imagesSeen)
    {
        imagesSeen = 0;
        string folder = Path.GetDirectoryName(Path.GetFullPath(manifest))!;
        var byPath = new Dictionary<string, Item>();
        var order = new List<Item>();
        // A manifest that cannot be read is the whole input gone wrong, not one bad item: an error, nothing written.
        string text = CaptionedImageFolder.ReadText(manifest, out string? problem) ?? throw new InvalidDataException($"{manifest}: manifest {problem}");
        string[] lines = text.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        bool csv = manifest.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);
        // A .csv's first row is a header when it names an image column and a caption column (in any order, beside
        // any others); otherwise every row is data, image then caption.
        var (imageColumn, captionColumn, columns, first) = (0, 1, "image,caption", 0);
        if (csv && lines.Length > 0 && SplitCsvLine(lines[0]) is { } header)
        {
            var names = header.Select(h => h.Trim().ToLowerInvariant()).ToList();
            int i = names.FindIndex(ImageColumns.Contains), c = names.FindIndex(CaptionColumns.Contains);
            if (i >= 0 && c >= 0) (imageColumn, captionColumn, columns, first) = (i, c, string.Join(",", header), 1);
        }
        for (int n = first; n < lines.Length; n++)
        {
            string line = lines[n];
            if (line.Trim().Length == 0) continue;
            int recordLine = n + 1;
            string where = $"{manifest}:{recordLine}";
            string? image;
            List<string> captions;
            if (csv)
            {
                // A quoted field may hold line breaks (a caption typed with Alt+Enter in a spreadsheet): the record
                // goes on over the next lines until its quotes close, and is named by its first line. A quote that
                // never closes rejects its own line only; the lines after it are read as records again.
                int start = n;
                var fields = SplitCsvLine(line);
                while (fields is null && n + 1 < lines.Length)
                {
                    line += "\n" + lines[++n];
                    fields = SplitCsvLine(line);
                }
                if (fields is null)
                {
                    rejects.Add(new(where, "a quoted field is never closed"));
                    n = start;
                    continue;
                }
                if (fields.Count <= Math.Max(imageColumn, captionColumn)) { rejects.Add(new(where, $"expected the columns {columns}")); continue; }
                (image, captions) = (fields[imageColumn], [fields[captionColumn]]);
            }
            else if (ParseJsonLine(line, out image, out captions) is { } bad) { rejects.Add(new(where, bad)); continue; }
            if (image!.Trim().Length == 0) { rejects.Add(new(where, "empty image path")); continue; }
            string path = Path.GetFullPath(Path.Combine(folder, image));
            if (!byPath.TryGetValue(path, out var item)) { byPath[path] = item = new Item { Path = path, Manifest = manifest }; order.Add(item); }
            item.Lines.Add(recordLine);
            item.Captions.AddRange(captions);
        }
        imagesSeen = order.Count;
        return order;
    }

    static readonly string[] ImageColumns = ["image", "image_path", "path", "file", "filename"];
    static readonly string[] CaptionColumns = ["caption", "text"];

    /// <summary>One .jsonl line: {"image": path, "caption": text} and/or "captions": [texts]. Null, or why not.</summary>
    static string? ParseJsonLine(string line, out string? image, out List<string> captions)
    {
        (image, captions) = (null, new List<string>());
        JsonDocument document;
        try { document = JsonDocument.Parse(line); }
        catch (JsonException e) { return $"invalid JSON: {e.Message}"; }
        using (document)
        {
            var o = document.RootElement;
            if (o.ValueKind != JsonValueKind.Object) return "expected a JSON object";
            if (!o.TryGetProperty("image", out var path) || path.ValueKind != JsonValueKind.String) return "field 'image' missing or not a string";
            image = path.GetString();
            bool one = o.TryGetProperty("caption", out var caption), many = o.TryGetProperty("captions", out var list);
            if (!one && !many) return "field 'caption' or 'captions' missing";
            if (one && caption.ValueKind != JsonValueKind.String) return "field 'caption' is not a string";
            if (many && (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(c => c.ValueKind != JsonValueKind.String)))
                return "field 'captions' is not a list of strings";
            if (one) captions.Add(caption.GetString()!);
            if (many) captions.AddRange(list.EnumerateArray().Select(c => c.GetString()!));
            return null;
        }
    }

    // RFC 4180 fields of one record (quoted fields may hold commas, doubled quotes and line breaks); null while a quoted
    // field is still open. Written here because the manifest needs just this, with the manifest's own line numbers in
    // every reject, and no CSV package is referenced by the data library.
    static List<string>? SplitCsvLine(string line)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"' && field.Length == 0) quoted = true;
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        if (quoted) return null;
        fields.Add(field.ToString());
        return fields;
    }
}
