using System.Buffers.Binary;
using System.Collections;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// Writes what <c>torch.save</c> writes: a protocol-2 pickle whose tensors are
/// <c>torch._utils._rebuild_tensor_v2(persistent ('storage', torch.FloatStorage, key, 'cpu', numel), offset, size,
/// stride, False, OrderedDict())</c>, beside one raw little-endian zip entry per storage, stored uncompressed and
/// 64-byte aligned. Values: null, bool, integers, float/double, string, Tensor, <see cref="StorageView"/>,
/// <see cref="OrderedDictValue"/>, IDictionary (dict, in enumeration order), arrays (tuple), other ILists (list).
/// </summary>
internal static class TorchArchiveWriter
{
    /// <summary>Written as a Python <c>collections.OrderedDict</c> (torch state dicts are).</summary>
    internal sealed record OrderedDictValue(IDictionary Items);

    /// <summary>
    /// A tensor written as a view of an explicit 1-D contiguous storage tensor; views of the same storage object share
    /// one storage entry, as torch.save does for views. Lets tests and tools write any offset/stride/sharing layout.
    /// </summary>
    internal sealed record StorageView(Tensor Storage, long Offset, long[] Shape, long[] Stride);

    public static void Save(string path, object? root, long zip64Limit = uint.MaxValue)
    {
        using var pickler = new Pickler();
        byte[] pickle = pickler.Pickle(root);
        string archive = ArchiveName(path);
        AtomicFile.Write(path, stream =>
        {
            var zip = new StoredZipWriter(stream) { Zip64Limit = zip64Limit };
            zip.Add(archive + "/data.pkl", pickle);
            zip.Add(archive + "/byteorder", Encoding.ASCII.GetBytes("little"));
            foreach (var (key, storage) in pickler.Storages)
                zip.Add($"{archive}/data/{key}", storage.NumberOfElements * storage.ElementSize, s => TensorBytes.Write(storage, s));
            zip.Add(archive + "/version", Encoding.ASCII.GetBytes("3\n"));
            zip.Finish();
        });
    }

    // torch names the archive folder after the file (any name works for torch.load).
    static string ArchiveName(string path)
    {
        string stem = Path.GetFileNameWithoutExtension(path);
        return stem.Length > 0 && stem.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') ? stem : "archive";
    }

    sealed class Pickler : IDisposable
    {
        readonly MemoryStream _out = new();
        readonly Dictionary<string, int> _globals = new();
        readonly Dictionary<Tensor, string> _viewStorages = new(ReferenceEqualityComparer.Instance);
        readonly HashSet<object> _open = new(ReferenceEqualityComparer.Instance);
        readonly List<Tensor> _owned = new();

        /// <summary>Storage key and the CPU contiguous tensor whose elements make the entry.</summary>
        public List<(string Key, Tensor Storage)> Storages { get; } = new();

        public byte[] Pickle(object? root)
        {
            _out.Write([0x80, 2]); // PROTO 2, as torch.save
            Write(root);
            _out.WriteByte((byte)'.');
            return _out.ToArray();
        }

        void Write(object? value)
        {
            switch (value)
            {
                case null: Op('N'); break;
                case bool b: Op(b ? 0x88 : 0x89); break;
                case sbyte or byte or short or ushort or int or uint or long: WriteInt(Convert.ToInt64(value)); break;
                case ulong u when u <= long.MaxValue: WriteInt((long)u); break;
                case float or double:
                {
                    Op('G');
                    Span<byte> b = stackalloc byte[8];
                    BinaryPrimitives.WriteDoubleBigEndian(b, Convert.ToDouble(value));
                    _out.Write(b);
                    break;
                }
                case string s: WriteString(s); break;
                case Tensor t: WriteTensor(t); break;
                case StorageView v: WriteView(v); break;
                case OrderedDictValue o:
                    Nested(o, () =>
                    {
                        Global("collections", "OrderedDict");
                        Op(')');
                        Op('R');
                        WriteItems(o.Items);
                    });
                    break;
                case IDictionary d:
                    Nested(d, () =>
                    {
                        Op('}');
                        WriteItems(d);
                    });
                    break;
                case Array a: Nested(a, () => WriteTuple(a.Cast<object?>().ToList())); break;
                case IList l:
                    Nested(l, () =>
                    {
                        Op(']');
                        if (l.Count == 0) return;
                        Op('(');
                        foreach (var item in l) Write(item);
                        Op('e');
                    });
                    break;
                default: throw new ArgumentException($"cannot write a value of type {value.GetType()} into a checkpoint");
            }
        }

        void Nested(object container, Action write)
        {
            if (!_open.Add(container)) throw new ArgumentException("cannot write a structure that contains itself into a checkpoint");
            write();
            _open.Remove(container);
        }

        void WriteItems(IDictionary d)
        {
            if (d.Count == 0) return;
            Op('(');
            foreach (DictionaryEntry e in d)
            {
                if (e.Key is not (string or bool or sbyte or byte or short or ushort or int or uint or long or double))
                    throw new ArgumentException($"dict keys of type {e.Key.GetType()} cannot be written into a checkpoint");
                Write(e.Key);
                Write(e.Value);
            }
            Op('u');
        }

        void WriteTuple(IReadOnlyList<object?> items)
        {
            if (items.Count == 0) { Op(')'); return; }
            if (items.Count > 3) Op('(');
            foreach (var item in items) Write(item);
            Op(items.Count switch { 1 => 0x85, 2 => 0x86, 3 => 0x87, _ => 't' });
        }

        void WriteTensor(Tensor t)
        {
            var dtype = TensorBytes.Of(t.dtype);
            var storage = TensorBytes.CpuContiguous(t);
            _owned.Add(storage);
            string key = Storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Storages.Add((key, storage));
            long[] shape = t.shape;
            var stride = new long[shape.Length];
            long step = 1;
            for (int i = shape.Length - 1; i >= 0; i--)
            {
                stride[i] = step;
                step *= Math.Max(shape[i], 1);
            }
            WriteRebuild(dtype, key, storage.NumberOfElements, 0, shape, stride);
        }

        void WriteView(StorageView v)
        {
            var dtype = TensorBytes.Of(v.Storage.dtype);
            if (v.Storage.dim() != 1 || !v.Storage.is_contiguous() || v.Storage.device_type != DeviceType.CPU)
                throw new ArgumentException("a StorageView needs a 1-D contiguous CPU storage tensor");
            if (!_viewStorages.TryGetValue(v.Storage, out var key))
            {
                key = Storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                _viewStorages[v.Storage] = key;
                Storages.Add((key, v.Storage));
            }
            WriteRebuild(dtype, key, v.Storage.NumberOfElements, v.Offset, v.Shape, v.Stride);
        }

        void WriteRebuild(TensorBytes.DType dtype, string key, long numel, long offset, long[] shape, long[] stride)
        {
            Global("torch._utils", "_rebuild_tensor_v2");
            Op('(');
            Op('(');
            WriteString("storage");
            Global("torch", dtype.StorageName);
            WriteString(key);
            WriteString("cpu");
            WriteInt(numel);
            Op('t');
            Op('Q'); // BINPERSID
            WriteInt(offset);
            WriteTuple(shape.Cast<object?>().ToList());
            WriteTuple(stride.Cast<object?>().ToList());
            Op(0x89); // requires_grad False
            Global("collections", "OrderedDict");
            Op(')');
            Op('R'); // backward_hooks = OrderedDict()
            Op('t');
            Op('R');
        }

        // Globals are memoised as torch's pickler does (BINPUT once, BINGET after).
        void Global(string module, string name)
        {
            string full = module + "\n" + name + "\n";
            if (_globals.TryGetValue(full, out int index))
            {
                Memo(index, 'h', 'j'); // BINGET / LONG_BINGET
                return;
            }
            Op('c');
            _out.Write(Encoding.ASCII.GetBytes(full));
            index = _globals.Count;
            _globals[full] = index;
            Memo(index, 'q', 'r'); // BINPUT / LONG_BINPUT
        }

        void Memo(int index, char shortOp, char longOp)
        {
            if (index < 256)
            {
                Op(shortOp);
                _out.WriteByte((byte)index);
            }
            else
            {
                Op(longOp);
                WriteInt32(index);
            }
        }

        void WriteInt(long v)
        {
            if (v is >= 0 and < 256)
            {
                Op('K');
                _out.WriteByte((byte)v);
            }
            else if (v is >= 0 and < 65536)
            {
                Op('M');
                _out.WriteByte((byte)v);
                _out.WriteByte((byte)(v >> 8));
            }
            else if (v is >= int.MinValue and <= int.MaxValue)
            {
                Op('J');
                WriteInt32((int)v);
            }
            else
            {
                // LONG1: the shortest little-endian two's complement that keeps the sign
                Span<byte> b = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(b, v);
                int n = 8;
                while (n > 1 && ((b[n - 1] == 0 && b[n - 2] < 0x80) || (b[n - 1] == 0xFF && b[n - 2] >= 0x80))) n--;
                Op(0x8a);
                _out.WriteByte((byte)n);
                _out.Write(b[..n]);
            }
        }

        void WriteString(string s)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            Op('X');
            WriteInt32(bytes.Length);
            _out.Write(bytes);
        }

        void WriteInt32(int v)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, v);
            _out.Write(b);
        }

        void Op(int opcode) => _out.WriteByte((byte)opcode);

        public void Dispose()
        {
            foreach (var t in _owned) t.Dispose();
        }
    }
}
