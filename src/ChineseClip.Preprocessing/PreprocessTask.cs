// One unit of preprocessing work as it travels on the queue: a slice of a split's pairs to pack into one shard.
using System.Text.Json;
using ChineseClip.Data.Shards;

namespace ChineseClip.Preprocessing;

/// <param name="Id">Unique per shard: the same shard enqueued twice is one task.</param>
/// <param name="Vocab">vocab.txt for the tokenizer (the shard stores token ids).</param>
/// <param name="TraceParent">W3C traceparent of the enqueuing operation; processing continues that trace.</param>
public sealed record PreprocessTask(string Id, string DataDir, string Split, int Shard, long FirstPair, int PairCount,
    int Resolution, int ContextLength, string Vocab, string OutputDir, string? TraceParent = null)
{
    public ShardSpec Spec => new(DataDir, Split, Shard, FirstPair, PairCount, Resolution, ContextLength);

    /// <summary>A task per shard, named after the shard file it produces (so re-enqueueing a plan is a no-op).</summary>
    public static PreprocessTask ForShard(ShardSpec spec, string vocab, string outputDir, string? traceParent) =>
        new(Path.Combine(Path.GetFullPath(outputDir), spec.Info.FileName()), Path.GetFullPath(spec.DataDir), spec.Split,
            spec.Shard, spec.FirstPair, spec.PairCount, spec.Resolution, spec.ContextLength, Path.GetFullPath(vocab),
            Path.GetFullPath(outputDir), traceParent);

    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("id", Id);
            w.WriteString("dataset_dir", DataDir);
            w.WriteString("split", Split);
            w.WriteNumber("shard", Shard);
            w.WriteNumber("first_pair", FirstPair);
            w.WriteNumber("pair_count", PairCount);
            w.WriteNumber("resolution", Resolution);
            w.WriteNumber("context_length", ContextLength);
            w.WriteString("vocab", Vocab);
            w.WriteString("output_dir", OutputDir);
            if (TraceParent != null) w.WriteString("traceparent", TraceParent);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Parses a task; a bad one gives <see cref="FormatException"/> with one line naming
    /// <paramref name="source"/> and the field.</summary>
    public static PreprocessTask FromJson(string json, string source)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new FormatException($"{source}: task is not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FormatException($"{source}: task is not a JSON object");
            string Text(string name, bool required = true)
            {
                if (root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.String && e.GetString() is { Length: > 0 } s) return s;
                if (!required && (!root.TryGetProperty(name, out e) || e.ValueKind == JsonValueKind.Null)) return "";
                throw new FormatException($"{source}: task field '{name}' missing or not a non-empty string");
            }
            long Number(string name, long min, long max)
            {
                if (root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) && v >= min && v <= max) return v;
                throw new FormatException($"{source}: task field '{name}' missing or not an integer in [{min}, {max}]");
            }
            string traceParent = Text("traceparent", required: false);
            return new PreprocessTask(Text("id"), Text("dataset_dir"), Text("split"), (int)Number("shard", 0, int.MaxValue),
                Number("first_pair", 0, long.MaxValue), (int)Number("pair_count", 0, int.MaxValue), (int)Number("resolution", 1, 4096),
                (int)Number("context_length", 3, 4096), Text("vocab"), Text("output_dir"), traceParent.Length == 0 ? null : traceParent);
        }
    }
}
