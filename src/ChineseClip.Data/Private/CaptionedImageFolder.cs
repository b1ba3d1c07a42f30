// A folder tree of images with same-name .txt captions (one caption per line, UTF-8 or UTF-16 with a byte-order mark),
// as users keep their own data: read by convert-private-data and by `cnclip index build`.
using System.Text;

namespace ChineseClip.Data.Private;

/// <summary>An image file and the lines of its caption file (none when it has no caption file and captions are optional).</summary>
public sealed record CaptionedImage(string Path, IReadOnlyList<string> Captions);

public static class CaptionedImageFolder
{
    public static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"];
    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // The folder walk, in ordinal order of names. A caption file pairs with the image of the same stem in its folder
    // (x.png with x.txt, or x.TXT); one no image uses is reported. Linked folders are read, each real folder once, so a
    // link back up the tree ends. The skipped folder (an output folder inside the input) is not read (a rerun sees what the
    // first run saw).
    public static List<CaptionedImage> Read(string root, string? skipFolder, bool requireCaptions, List<Reject> rejects, out int imagesSeen)
    {
        var items = new List<CaptionedImage>();
        int seen = 0;
        var visited = new HashSet<string>(StringComparer.Ordinal);
        string? output = skipFolder is null ? null : RealPath(skipFolder);
        Walk(root);
        imagesSeen = seen;
        return items;

        void Walk(string folder)
        {
            string real;
            try { real = RealPath(folder); }
            catch (IOException e) { rejects.Add(new(folder, $"folder unreadable: {e.Message}")); return; }
            if (real == output) return;
            if (!visited.Add(real))
            {
                rejects.Add(new(folder, $"folder already read as {real}: a symbolic link loop or a second link to one folder, skipped"));
                return;
            }
            string[] files, folders;
            try
            {
                files = Directory.GetFiles(folder).Order(StringComparer.Ordinal).ToArray();
                folders = Directory.GetDirectories(folder).Order(StringComparer.Ordinal).ToArray();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                rejects.Add(new(folder, BadName(folder) ?? $"folder unreadable: {e.Message}"));
                return;
            }
            var captionFiles = files.Where(f => Path.GetExtension(f).Equals(".txt", StringComparison.OrdinalIgnoreCase) && BadName(f) is null)
                .ToLookup(Path.GetFileNameWithoutExtension, StringComparer.Ordinal);
            var used = new HashSet<string>(StringComparer.Ordinal);
            foreach (string path in files)
            {
                if (BadName(path) is { } badName) { rejects.Add(new(path, badName)); continue; }
                string extension = Path.GetExtension(path).ToLowerInvariant();
                if (extension == ".txt") continue;
                if (!ImageExtensions.Contains(extension)) { rejects.Add(new(path, $"not an image extension ({extension})")); continue; }
                seen++;
                string stem = Path.GetFileNameWithoutExtension(path);
                // x.txt before x.TXT when both are there; the other is then reported as unused.
                string? captionFile = captionFiles[stem].OrderBy(c => Path.GetExtension(c) == ".txt" ? 0 : 1).ThenBy(c => c, StringComparer.Ordinal).FirstOrDefault();
                if (captionFile is null)
                {
                    if (requireCaptions) rejects.Add(new(path, $"no caption file {stem}.txt", Image: true));
                    else items.Add(new CaptionedImage(path, []));
                    continue;
                }
                used.Add(captionFile);
                string? text = ReadText(captionFile, out string? problem);
                if (text is null)
                {
                    rejects.Add(new(path, $"caption file {Path.GetFileName(captionFile)} {problem}", Image: true));
                    continue;
                }
                items.Add(new CaptionedImage(path, [.. text.Split('\n').Select(l => l.TrimEnd('\r'))]));
            }
            foreach (string captionFile in captionFiles.SelectMany(g => g).Where(c => !used.Contains(c)).Order(StringComparer.Ordinal))
                rejects.Add(new(captionFile, NoImageReason));
            foreach (string sub in folders) Walk(sub);
        }
    }

    static readonly string NoImageReason = $"caption file with no image of the same name ({string.Join(", ", ImageExtensions)})";

    // On Linux a name that is not valid UTF-8 reaches .NET with U+FFFD in it, and that name opens nothing.
    static string? BadName(string path) =>
        Path.GetFileName(path).Contains('\uFFFD') && !File.Exists(path) && !Directory.Exists(path)
            ? "file name is not valid UTF-8 (a GBK name from a Windows archive?): rename it, e.g. convmv -f GBK -t UTF-8 --notest"
            : null;

    /// <summary>The path with every symbolic link resolved, component by component from the root.</summary>
    static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full)!;
        foreach (string part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            FileSystemInfo? target = Directory.Exists(next) ? new DirectoryInfo(next).ResolveLinkTarget(returnFinalTarget: true) : null;
            current = target is null ? next : RealPath(target.FullName);
        }
        return current;
    }

    /// <summary>The text of a UTF-8 file (a BOM is dropped), or of a UTF-16 one with its byte-order mark (what
    /// Windows Notepad saves as "Unicode"); or null and why not. Other encodings are refused, not guessed.</summary>
    internal static string? ReadText(string path, out string? problem)
    {
        problem = null;
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem = $"unreadable: {e.Message}";
            return null;
        }
        string text;
        try
        {
            text = bytes switch
            {
                [0xEF, 0xBB, 0xBF, ..] => StrictUtf8.GetString(bytes, 3, bytes.Length - 3),
                [0xFF, 0xFE, ..] => StrictUtf16(bigEndian: false).GetString(bytes, 2, bytes.Length - 2),
                [0xFE, 0xFF, ..] => StrictUtf16(bigEndian: true).GetString(bytes, 2, bytes.Length - 2),
                _ => StrictUtf8.GetString(bytes),
            };
        }
        catch (DecoderFallbackException)
        {
            problem = bytes is [0xFF, 0xFE, ..] or [0xFE, 0xFF, ..]
                ? "starts with a UTF-16 byte-order mark but is not valid UTF-16"
                : "is not UTF-8 (GBK or another legacy encoding?): convert it, e.g. iconv -f GBK -t UTF-8";
            return null;
        }
        // UTF-16 of ASCII text without a mark is valid UTF-8 with a NUL after every letter; no caption holds NULs.
        if (text.Contains('\0'))
        {
            problem = "holds NUL characters (UTF-16 without a byte-order mark?): save it as UTF-8";
            return null;
        }
        return text;
    }

    static UnicodeEncoding StrictUtf16(bool bigEndian) => new(bigEndian, byteOrderMark: false, throwOnInvalidBytes: true);
}
