using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;
using static ChineseClip.Model.Checkpoints.RestrictedUnpickler;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// Reads a torch.save zip archive (<c>&lt;name&gt;/data.pkl</c>, <c>&lt;name&gt;/data/&lt;key&gt;</c> raw storages,
/// <c>&lt;name&gt;/version</c>, maybe <c>&lt;name&gt;/byteorder</c>) in two steps: parse the whole pickle with the
/// <see cref="RestrictedUnpickler"/>, then read the storages it names and build the tensors as views of them, so
/// shared storages, offsets and strides come back as torch made them.
/// </summary>
internal sealed class TorchArchiveReader : IDisposable
{
    readonly string _path;
    readonly ZipArchive _zip;
    readonly string _prefix;
    readonly Dictionary<string, ZipArchiveEntry> _entries;

    TorchArchiveReader(string path, ZipArchive zip)
    {
        _path = path;
        _zip = zip;
        _entries = zip.Entries.GroupBy(e => e.FullName).ToDictionary(g => g.Key, g => g.First());
        var pkl = zip.Entries.Where(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal)
                && e.FullName.Count(c => c == '/') == 1).ToList();
        if (pkl.Count != 1)
            throw new CheckpointFormatException($"{path}: not a torch.save archive ({(pkl.Count == 0 ? "no" : "several")} <name>/data.pkl entries)");
        _prefix = pkl[0].FullName[..^"data.pkl".Length];
        if (_entries.TryGetValue(_prefix + "byteorder", out var order))
        {
            string text = ReadText(order).Trim();
            if (text != "little") throw new CheckpointFormatException($"{path}: byteorder '{text}' is not supported (only little-endian)");
        }
    }

    public static TorchArchiveReader Open(string path)
    {
        var stream = OpenFile(path);
        try
        {
            Span<byte> magic = stackalloc byte[4];
            int n = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
            if (n < 4 || magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4)
                throw new CheckpointFormatException(n > 0 && magic[0] == 0x80
                    ? $"{path}: legacy (pre-1.6) torch.save format is not supported; re-save it with a current torch.save"
                    : $"{path}: not a torch.save zip archive");
            stream.Position = 0;
            return new TorchArchiveReader(path, new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false));
        }
        catch (InvalidDataException e)
        {
            stream.Dispose();
            throw new CheckpointFormatException($"{path}: unreadable zip archive, truncated or corrupt ({e.Message})", e);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    internal static FileStream OpenFile(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointFormatException($"{path}: cannot open ({e.Message})", e);
        }
    }

    /// <summary>
    /// The unpickled top-level object with tensors still as <see cref="TensorRef"/>: nothing but the pickle has been
    /// read yet. <see cref="Materialize"/> then reads the storages of whatever part of it the caller keeps.
    /// </summary>
    public object? ReadPickle()
    {
        var entry = _entries[_prefix + "data.pkl"];
        byte[] data = ReadAll(entry);
        return RestrictedUnpickler.Load(data, $"{_path} ({entry.FullName})");
    }

    /// <summary>Replaces every <see cref="TensorRef"/> inside <paramref name="root"/> (in place) by a tensor.</summary>
    public object? Materialize(object? root)
    {
        var storages = new Dictionary<StorageRef, Tensor>(ReferenceEqualityComparer.Instance);
        var tensors = new Dictionary<TensorRef, Tensor>(ReferenceEqualityComparer.Instance);
        try
        {
            return Walk(root, new HashSet<object>(ReferenceEqualityComparer.Instance), storages, tensors);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        finally
        {
            // The views keep the storages alive; the storage handles themselves are no longer needed.
            foreach (var s in storages.Values) s.Dispose();
        }
    }

    object? Walk(object? value, HashSet<object> seen, Dictionary<StorageRef, Tensor> storages, Dictionary<TensorRef, Tensor> tensors)
    {
        switch (value)
        {
            case TensorRef r:
                if (!tensors.TryGetValue(r, out var t)) tensors[r] = t = View(r, storages);
                return t;
            case object?[] tuple when seen.Add(tuple):
                for (int i = 0; i < tuple.Length; i++) tuple[i] = Walk(tuple[i], seen, storages, tensors);
                return tuple;
            case List<object?> list when seen.Add(list):
                for (int i = 0; i < list.Count; i++) list[i] = Walk(list[i], seen, storages, tensors);
                return list;
            case Dictionary<object, object?> dict when seen.Add(dict):
                foreach (var key in dict.Keys.ToList()) dict[key] = Walk(dict[key], seen, storages, tensors);
                return dict;
            default:
                return value;
        }
    }

    Tensor View(TensorRef r, Dictionary<StorageRef, Tensor> storages)
    {
        if (!storages.TryGetValue(r.Storage, out var storage)) storages[r.Storage] = storage = ReadStorage(r.Storage);
        bool empty = r.Shape.Any(s => s == 0);
        long last = r.Offset + r.Shape.Zip(r.Stride, (size, stride) => (size - 1) * stride).Sum();
        if (r.Offset < 0 || r.Shape.Any(s => s < 0) || r.Stride.Any(s => s < 0) || (!empty && last >= r.Storage.Numel))
            throw new CheckpointFormatException(
                $"{_path}: tensor view (offset {r.Offset}, shape [{string.Join(", ", r.Shape)}], stride [{string.Join(", ", r.Stride)}]) " +
                $"lies outside storage {_prefix}data/{r.Storage.Key} of {r.Storage.Numel} elements");
        return storage.as_strided(r.Shape, r.Stride, r.Offset);
    }

    Tensor ReadStorage(StorageRef s)
    {
        string name = _prefix + "data/" + s.Key;
        if (!_entries.TryGetValue(name, out var entry))
            throw new CheckpointFormatException($"{_path}: storage entry {name} is missing from the archive");
        long need = checked(s.Numel * s.DType.ElementSize);
        if (entry.Length < need)
            throw new CheckpointFormatException($"{_path}: storage entry {name} holds {entry.Length} bytes, the pickle needs {need} ({s.Numel} x {s.DType.Type})");
        return Guard(name, () =>
        {
            using var stream = entry.Open();
            return TensorBytes.Read(stream, s.DType, [s.Numel]);
        });
    }

    byte[] ReadAll(ZipArchiveEntry entry) => Guard(entry.FullName, () =>
    {
        using var stream = entry.Open();
        var bytes = new byte[entry.Length];
        stream.ReadExactly(bytes);
        return bytes;
    });

    string ReadText(ZipArchiveEntry entry) => System.Text.Encoding.UTF8.GetString(ReadAll(entry));

    T Guard<T>(string entry, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new CheckpointFormatException($"{_path}: cannot read entry {entry}, truncated or corrupt ({e.Message})", e);
        }
    }

    public void Dispose() => _zip.Dispose();
}
