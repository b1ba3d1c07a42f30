using System.Buffers.Binary;
using System.Text.Json;
using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// The safetensors format: 8-byte little-endian header length, a JSON header
/// (<c>{"__metadata__": {...}, key: {"dtype", "shape", "data_offsets": [begin, end]}}</c>, padded with spaces to a
/// multiple of 8), then the raw little-endian tensor bytes, back to back. Written here rather than through
/// PyBridge's Safetensors so that the header is validated against the file size (truncation, overlaps) with
/// messages naming the file and key, and so that files are written atomically with the "format": "pt" metadata.
/// </summary>
public static class SafetensorsFile
{
    const long MaxHeader = 100 << 20;

    /// <summary>Reads every tensor, in header order.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var stream = TorchArchiveReader.OpenFile(path);
        var entries = ReadHeader(path, stream, out long dataStart);
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (key, dtype, shape, begin) in entries)
            {
                stream.Position = dataStart + begin;
                try
                {
                    result.Add(key, TensorBytes.Read(stream, dtype, shape));
                }
                catch (Exception e) when (e is IOException)
                {
                    throw new CheckpointFormatException($"{path}: cannot read tensor '{key}', truncated ({e.Message})", e);
                }
            }
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Writes the tensors in the given order, atomically (temporary file, fsync, rename).</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.ToList();
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            w.WriteStartObject("__metadata__");
            foreach (var (k, v) in metadata ?? new Dictionary<string, string> { ["format"] = "pt" }) w.WriteString(k, v);
            w.WriteEndObject();
            long offset = 0;
            foreach (var (key, t) in items)
            {
                long size = t.NumberOfElements * TensorBytes.Of(t.dtype).ElementSize;
                w.WriteStartObject(key);
                w.WriteString("dtype", TensorBytes.Of(t.dtype).SafetensorsName);
                w.WriteStartArray("shape");
                foreach (long d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + size);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += size;
            }
            w.WriteEndObject();
        }
        int padded = (int)((json.Length + 7) / 8 * 8);
        while (json.Length < padded) json.WriteByte((byte)' ');

        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(length, json.Length);
            stream.Write(length);
            json.Position = 0;
            json.CopyTo(stream);
            foreach (var (_, t) in items)
            {
                using var c = TensorBytes.CpuContiguous(t);
                TensorBytes.Write(c, stream);
            }
        });
    }

    /// <summary>Whether the first bytes look like a safetensors header (a plausible length, then '{').</summary>
    internal static bool LooksLike(ReadOnlySpan<byte> head, long fileLength) =>
        head.Length >= 9 && BinaryPrimitives.ReadUInt64LittleEndian(head) is var n && n > 1 && n <= (ulong)Math.Max(fileLength - 8, 0)
        && head[8] == (byte)'{';

    static List<(string Key, TensorBytes.DType DType, long[] Shape, long Begin)> ReadHeader(string path, FileStream stream, out long dataStart)
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
            throw new CheckpointFormatException($"{path}: not a safetensors file (shorter than 8 bytes)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)Math.Min(MaxHeader, stream.Length - 8))
            throw new CheckpointFormatException($"{path}: not a safetensors file or truncated (header of {headerLength} bytes, file of {stream.Length})");
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        dataStart = 8 + (long)headerLength;
        long dataLength = stream.Length - dataStart;

        var entries = new List<(string, TensorBytes.DType, long[], long)>();
        try
        {
            using var doc = JsonDocument.Parse(header, new JsonDocumentOptions { AllowDuplicateProperties = false });
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                string dtypeName = p.Value.GetProperty("dtype").GetString() ?? "";
                var dtype = TensorBytes.FromSafetensorsName(dtypeName)
                    ?? throw new CheckpointFormatException($"{path}: tensor '{p.Name}' has unsupported dtype {dtypeName}");
                long[] shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long[] offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long numel = shape.Aggregate(1L, (a, b) => checked(a * b));
                if (shape.Any(d => d < 0) || offsets.Length != 2 || offsets[1] - offsets[0] != checked(numel * dtype.ElementSize) || offsets[0] < 0)
                    throw new CheckpointFormatException($"{path}: tensor '{p.Name}' has inconsistent shape, dtype and data_offsets");
                if (offsets[1] > dataLength)
                    throw new CheckpointFormatException($"{path}: tensor '{p.Name}' ends at byte {offsets[1]} of a {dataLength}-byte data section (truncated file)");
                entries.Add((p.Name, dtype, shape, offsets[0]));
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException or OverflowException)
        {
            throw new CheckpointFormatException($"{path}: malformed safetensors header ({e.Message})", e);
        }
        return entries;
    }
}
