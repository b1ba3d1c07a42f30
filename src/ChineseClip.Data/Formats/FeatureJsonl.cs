// Feature files in the official format: {"image_id": 1001, "feature": [..]} / {"text_id": 10, "feature": [..]},
// written the way Python's json.dumps writes them (", " and ": " separators, float repr), so files compare as text.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ChineseClip.Data.Formats;

public static class FeatureJsonl
{
    public const string ImageIdKey = "image_id";
    public const string TextIdKey = "text_id";

    public static string FormatLine(string idKey, long id, ReadOnlySpan<float> feature)
    {
        var sb = new StringBuilder(16 + feature.Length * 22);
        sb.Append("{\"").Append(idKey).Append("\": ").Append(id.ToString(CultureInfo.InvariantCulture)).Append(", \"feature\": [");
        for (int i = 0; i < feature.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(PythonRepr(feature[i]));
        }
        return sb.Append("]}").ToString();
    }

    /// <summary>repr() of the Python float (a double) that a float32 becomes through numpy's tolist().</summary>
    public static string PythonRepr(float value) => PythonRepr((double)value);

    /// <summary>repr() of a Python float.</summary>
    public static string PythonRepr(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (double.IsInfinity(d)) return d > 0 ? "Infinity" : "-Infinity";
        string s = d.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e");
        if (s.Contains('e'))
        {
            // Python writes at least two exponent digits with a sign: 1e-05, 1.5e+16.
            int e = s.IndexOf('e');
            string mantissa = s[..e], exponent = s[(e + 1)..];
            char sign = exponent[0] == '-' ? '-' : '+';
            string digits = exponent.TrimStart('+', '-');
            return $"{mantissa}e{sign}{digits.PadLeft(2, '0')}";
        }
        return s.Contains('.') ? s : s + ".0";
    }

    /// <summary>Reads a feature file into id -> feature (used by evaluation and tests).</summary>
    public static Dictionary<long, float[]> Read(string path, string idKey)
    {
        var result = new Dictionary<long, float[]>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                result[root.GetProperty(idKey).GetInt64()] =
                    root.GetProperty("feature").EnumerateArray().Select(x => x.GetSingle()).ToArray();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: expected {{\"{idKey}\": int, \"feature\": [floats]}}: {e.Message}");
            }
        }
        return result;
    }
}
