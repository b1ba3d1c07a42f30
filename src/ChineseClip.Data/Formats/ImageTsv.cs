// `{split}_imgs.tsv`: one `image_id<TAB>base64-of-the-image-file` per line (standard or urlsafe base64 alphabet).
namespace ChineseClip.Data.Formats;

/// <summary>One image of a tsv file; <see cref="Line"/> is its 1-based line number (for error messages).</summary>
public readonly record struct ImageRecord(long ImageId, byte[] Bytes, int Line);

public static class ImageTsv
{
    /// <summary>Reads the records in order; a bad line is reported through <paramref name="onError"/> and skipped.</summary>
    public static IEnumerable<ImageRecord> Read(string path, Action<RecordError> onError) =>
        ReadWithText(path, onError).Select(r => r.Record);

    /// <summary>As <see cref="Read"/>, plus each line's base64 text exactly as written (trimmed), for formats that
    /// store the text itself (the official LMDB).</summary>
    public static IEnumerable<(ImageRecord Record, string Base64Text)> ReadWithText(string path, Action<RecordError> onError) =>
        ReadSelected(path, _ => true, onError);

    /// <summary>As <see cref="Read"/>, but only lines whose image id <paramref name="wanted"/> accepts are decoded (and
    /// reported when bad); the others cost a scan of their id.</summary>
    public static IEnumerable<ImageRecord> ReadWhere(string path, Func<long, bool> wanted, Action<RecordError> onError) =>
        ReadSelected(path, wanted, onError).Select(r => r.Record);

    /// <summary>The image id of every line in order, without decoding the images (bad lines are reported).</summary>
    public static IEnumerable<long> ReadIds(string path, Action<RecordError> onError) =>
        Lines(path, onError).Select(l => l.Id);

    static IEnumerable<(ImageRecord Record, string Base64Text)> ReadSelected(string path, Func<long, bool> wanted, Action<RecordError> onError)
    {
        foreach (var (id, line, tab, lineNumber) in Lines(path, onError))
        {
            if (!wanted(id)) continue;
            ReadOnlySpan<char> text = line.AsSpan(tab + 1).Trim();
            byte[]? bytes = Base64.Decode(text);
            if (bytes is null)
            {
                onError(new RecordError(path, lineNumber, $"image {id}: invalid base64"));
                continue;
            }
            yield return (new ImageRecord(id, bytes, lineNumber), text.ToString());
        }
    }

    // Lines with a tab and an integer id; others are reported and skipped.
    static IEnumerable<(long Id, string Line, int Tab, int LineNumber)> Lines(string path, Action<RecordError> onError)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: image file not found", path);
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            int tab = line.IndexOf('\t');
            if (tab < 0)
            {
                onError(new RecordError(path, lineNumber, "expected image_id<TAB>base64"));
                continue;
            }
            if (!long.TryParse(line.AsSpan(0, tab), out long id))
            {
                onError(new RecordError(path, lineNumber, $"image_id '{Truncate(line[..tab])}' is not a 64-bit integer"));
                continue;
            }
            yield return (id, line, tab, lineNumber);
        }
    }

    internal static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "...";
}

/// <summary>Base64 in either alphabet (the official loaders use urlsafe_b64decode; many files use the standard one).</summary>
public static class Base64
{
    public static byte[]? Decode(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return null;
        int padded = (text.Length + 3) / 4 * 4;
        char[] buffer = new char[padded];
        for (int i = 0; i < text.Length; i++)
            buffer[i] = text[i] switch { '-' => '+', '_' => '/', var c => c };
        for (int i = text.Length; i < padded; i++) buffer[i] = '=';
        byte[] output = new byte[padded / 4 * 3];
        return Convert.TryFromBase64Chars(buffer, output, out int written) ? output[..written] : null;
    }

    public static string Encode(ReadOnlySpan<byte> bytes, bool urlSafe = false)
    {
        string s = Convert.ToBase64String(bytes);
        return urlSafe ? s.Replace('+', '-').Replace('/', '_') : s;
    }
}
