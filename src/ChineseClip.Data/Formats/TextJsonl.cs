// `{split}_texts.jsonl`: {"text_id": 8428, "text": "...", "image_ids": [1076345, 517602]} per line.
using System.Text.Json;

namespace ChineseClip.Data.Formats;

/// <summary>One text of a jsonl file; <see cref="Line"/> is its 1-based line number (for error messages).</summary>
public sealed record TextRecord(long TextId, string Text, IReadOnlyList<long> ImageIds, int Line = 0);

public static class TextJsonl
{
    /// <summary>Reads the records in order; a bad line is reported through <paramref name="onError"/> and skipped.
    /// image_ids may be absent (test splits).</summary>
    public static IEnumerable<TextRecord> Read(string path, Action<RecordError> onError)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: text file not found", path);
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            TextRecord? record = Parse(line, out string? problem);
            if (record is null) onError(new RecordError(path, lineNumber, problem!));
            else yield return record with { Line = lineNumber };
        }
    }

    static TextRecord? Parse(string line, out string? problem)
    {
        problem = null;
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) { problem = "expected a JSON object"; return null; }
            if (!root.TryGetProperty("text_id", out var idElement) || idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt64(out long id))
            {
                problem = "field 'text_id' missing or not a 64-bit integer";
                return null;
            }
            if (!root.TryGetProperty("text", out var textElement) || textElement.ValueKind != JsonValueKind.String)
            {
                problem = $"text {id}: field 'text' missing or not a string";
                return null;
            }
            var imageIds = new List<long>();
            if (root.TryGetProperty("image_ids", out var ids))
            {
                if (ids.ValueKind != JsonValueKind.Array) { problem = $"text {id}: field 'image_ids' is not a list"; return null; }
                foreach (var e in ids.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long imageId)) { problem = $"text {id}: field 'image_ids' holds a non-integer"; return null; }
                    imageIds.Add(imageId);
                }
            }
            return new TextRecord(id, textElement.GetString()!, imageIds);
        }
        catch (JsonException e)
        {
            problem = $"invalid JSON: {e.Message}";
            return null;
        }
    }
}
