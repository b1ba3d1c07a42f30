using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// A pickle virtual machine for tensor checkpoints that can only ever build plain data.
/// <para>
/// Why not Razorvine.Pickle (or PyBridge's PyTorchUnpickler on top of it): Razorvine turns every unknown global into a
/// ClassDict and resolves globals through a process-wide static registry that PyBridge fills on first use, it keeps
/// no dict order (Hashtable), and its GLOBAL/STACK_GLOBAL handlers are private, so an allowlist cannot be enforced.
/// A pre-scan of opcodes is not enough either: STACK_GLOBAL takes module and name from the stack, where they may come
/// from the memo (BINGET), DUP, or any other opcode, so only executing the stack machine knows them.
/// </para>
/// <para>
/// So this machine executes every opcode itself, and resolves GLOBAL, STACK_GLOBAL and INST when they execute, with
/// the actual strings, against a fixed allowlist; everything else raises <see cref="UnsafePickleException"/>.
/// Allowed globals only produce descriptors (<see cref="StorageRef"/>, <see cref="TensorRef"/>, dicts): no tensor data
/// is read until the whole pickle has been parsed (see <see cref="TorchArchiveReader"/>), so a refusal always comes
/// before anything is built. Opcodes that reach the copyreg extension registry, out-of-band buffers or arbitrary
/// classes (EXT1/2/4, OBJ, NEWOBJ_EX, NEXT_BUFFER, READONLY_BUFFER) are refused as well.
/// </para>
/// Python values map to: None -> null, bool, int -> long, float -> double, str -> string, bytes -> byte[],
/// tuple -> object?[], list -> List&lt;object?&gt;, dict and OrderedDict -> Dictionary&lt;object, object?&gt; (file order),
/// set/frozenset -> HashSet&lt;object?&gt;.
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>A storage named by a persistent id: <c>('storage', torch.FloatStorage, key, location, numel)</c>.</summary>
    internal sealed record StorageRef(string Key, TensorBytes.DType DType, long Numel);

    /// <summary>What <c>torch._utils._rebuild_tensor_v2</c> would build, before any data is read.</summary>
    internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Shape, long[] Stride);

    /// <summary>The value of an allowed global: a storage type (a token) or a function we implement.</summary>
    sealed record Global(string Name, TensorBytes.DType? Storage, Func<object?[], object?>? Call);

    readonly byte[] _data;
    readonly string _source;
    readonly Dictionary<string, StorageRef> _storages = new();
    readonly List<object?> _stack = new();
    readonly Stack<List<object?>> _metastack = new();
    readonly Dictionary<long, object?> _memo = new();
    List<object?> _current;
    int _pos;

    RestrictedUnpickler(byte[] data, string source)
    {
        _data = data;
        _source = source;
        _current = _stack;
    }

    /// <summary>Parses a pickle; tensors come back as <see cref="TensorRef"/>. <paramref name="source"/> names the file and entry in errors.</summary>
    public static object? Load(byte[] data, string source) => new RestrictedUnpickler(data, source).Run();

    Global Resolve(string module, string name)
    {
        string full = module + "." + name;
        if (module == "torch" && TensorBytes.FromStorageName(name) is { } dtype) return new Global(full, dtype, null);
        return full switch
        {
            "collections.OrderedDict" => new Global(full, null, NewOrderedDict),
            "torch._utils._rebuild_tensor_v2" => new Global(full, null, args => RebuildTensor(args, 6)),
            "torch._utils._rebuild_tensor" => new Global(full, null, args => RebuildTensor(args, 4)),
            "torch._utils._rebuild_parameter" => new Global(full, null, RebuildParameter),
            _ => throw new UnsafePickleException(_source, full, "not in the allowlist"),
        };
    }

    object? NewOrderedDict(object?[] args)
    {
        var dict = new Dictionary<object, object?>();
        if (args.Length == 0) return dict;
        if (args.Length == 1 && args[0] is IEnumerable<object?> pairs)
        {
            foreach (var pair in pairs)
            {
                if (pair is not object?[] { Length: 2 } kv) throw Malformed("OrderedDict expects (key, value) pairs");
                dict[Key(kv[0])] = kv[1];
            }
            return dict;
        }
        throw Malformed("OrderedDict called with unexpected arguments");
    }

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None)
    object? RebuildTensor(object?[] args, int minArgs)
    {
        if (args.Length < minArgs || args[0] is not StorageRef storage) throw Malformed("tensor rebuild with unexpected arguments");
        long offset = Int(args[1]);
        long[] shape = Longs(args[2]);
        long[] stride = Longs(args[3]);
        if (shape.Length != stride.Length) throw Malformed("tensor shape and stride differ in length");
        if (args.Length > 5 && args[5] is Dictionary<object, object?> { Count: > 0 })
            throw Malformed("tensor with backward hooks");
        return new TensorRef(storage, offset, shape, stride);
    }

    // _rebuild_parameter(data, requires_grad, backward_hooks): a parameter is its data here.
    object? RebuildParameter(object?[] args) =>
        args.Length >= 1 && args[0] is TensorRef t ? t : throw Malformed("parameter rebuild with unexpected arguments");

    object? PersistentLoad(object? pid)
    {
        if (pid is not object?[] { Length: 5 } t || t[0] as string != "storage" || t[1] is not Global { Storage: { } dtype }
            || t[2] is not string key)
            throw Malformed("unknown persistent id (expected ('storage', torch.<Type>Storage, key, location, numel))");
        long numel = Int(t[4]);
        if (numel < 0) throw Malformed($"storage {key} with negative size");
        if (_storages.TryGetValue(key, out var known))
        {
            if (known.DType != dtype) throw Malformed($"storage {key} is used with two dtypes");
            return known;
        }
        return _storages[key] = new StorageRef(key, dtype, numel);
    }

    object? Run()
    {
        while (true)
        {
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    if (ReadByte() > 5) throw Malformed("unsupported pickle protocol");
                    break;
                case 0x95: Take(8); break; // FRAME: a hint only
                case (byte)'.': // STOP
                    if (_metastack.Count != 0 || _current.Count != 1) throw Malformed("unbalanced stack at STOP");
                    return _current[0];
                case (byte)'(': _metastack.Push(_current); _current = new List<object?>(); break; // MARK
                case (byte)'0': // POP
                    if (_current.Count > 0) _current.RemoveAt(_current.Count - 1); else PopMark();
                    break;
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'I': Push(ParseIntLine(ReadLine())); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case (byte)'K': Push((long)ReadByte()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case (byte)'L': Push(ParseLong(ReadLine().TrimEnd('L'))); break;
                case 0x8a: Push(LittleEndianInt(Take(ReadByte()))); break; // LONG1
                case 0x8b: Push(LittleEndianInt(Take(Length(BinaryPrimitives.ReadInt32LittleEndian(Take(4)))))); break; // LONG4
                case (byte)'F': Push(double.Parse(ReadLine(), NumberStyles.Float, CultureInfo.InvariantCulture)); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;
                case (byte)'X': Push(Utf8(Take(Length(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))))); break;
                case 0x8c: Push(Utf8(Take(ReadByte()))); break; // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(Take(Length(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))))); break; // BINUNICODE8
                case (byte)'T': Push(Encoding.Latin1.GetString(Take(Length(BinaryPrimitives.ReadInt32LittleEndian(Take(4)))))); break; // BINSTRING
                case (byte)'U': Push(Encoding.Latin1.GetString(Take(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'B': Push(Take(Length(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break; // BINBYTES
                case (byte)'C': Push(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case 0x8e: case 0x96: Push(Take(Length(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))).ToArray()); break; // BINBYTES8, BYTEARRAY8
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'t': Push(PopMark().ToArray()); break;
                case 0x85: Push(new[] { Pop() }); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case (byte)']': Push(new List<object?>()); break;
                case (byte)'l': Push(PopMark()); break;
                case (byte)'a': { var item = Pop(); AsList(Peek()).Add(item); break; }
                case (byte)'e': { var items = PopMark(); AsList(Peek()).AddRange(items); break; }
                case (byte)'}': Push(new Dictionary<object, object?>()); break;
                case (byte)'d': { var items = PopMark(); var dict = new Dictionary<object, object?>(); SetItems(dict, items); Push(dict); break; }
                case (byte)'s': { var value = Pop(); var key = Pop(); SetItems(AsDict(Peek()), [key, value]); break; }
                case (byte)'u': { var items = PopMark(); SetItems(AsDict(Peek()), items); break; }
                case 0x8f: Push(new HashSet<object?>()); break; // EMPTY_SET
                case 0x90: { var items = PopMark(); AsSet(Peek()).UnionWith(items); break; } // ADDITEMS
                case 0x91: Push(new HashSet<object?>(PopMark())); break; // FROZENSET
                case (byte)'g': Push(MemoGet(ParseLong(ReadLine()))); break;
                case (byte)'h': Push(MemoGet(ReadByte())); break;
                case (byte)'j': Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break;
                case (byte)'p': _memo[ParseLong(ReadLine())] = Peek(); break;
                case (byte)'q': _memo[ReadByte()] = Peek(); break;
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(); break;
                case 0x94: _memo[_memo.Count] = Peek(); break; // MEMOIZE
                case (byte)'c': { string module = ReadLine(); Push(Resolve(module, ReadLine())); break; } // GLOBAL
                case 0x93: // STACK_GLOBAL: the names are whatever the stack holds now, however they got there
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n) throw new UnsafePickleException(_source, "STACK_GLOBAL", "module and name are not strings");
                    Push(Resolve(m, n));
                    break;
                }
                case (byte)'i': // INST: builds an instance of an inline-named class; never needed for tensors
                {
                    string module = ReadLine();
                    throw new UnsafePickleException(_source, module + "." + ReadLine(), "INST opcode");
                }
                case (byte)'R': case 0x81: // REDUCE, NEWOBJ
                {
                    var args = Pop();
                    var callable = Pop();
                    if (callable is not Global { Call: { } call }) throw Malformed("call of something that is not an allowed function");
                    if (args is not object?[] a) throw Malformed("call arguments are not a tuple");
                    Push(call(a));
                    break;
                }
                case (byte)'b': Build(Pop(), Peek()); break;
                case (byte)'P': Push(PersistentLoad(ReadLine())); break;
                case (byte)'Q': Push(PersistentLoad(Pop())); break;
                case (byte)'o': throw new UnsafePickleException(_source, "OBJ", "opcode builds arbitrary classes");
                case 0x92: throw new UnsafePickleException(_source, "NEWOBJ_EX", "opcode builds arbitrary classes");
                case 0x82: case 0x83: case 0x84: throw new UnsafePickleException(_source, "EXT" + (op - 0x81), "opcode reaches the copyreg extension registry");
                case 0x97: case 0x98: throw new UnsafePickleException(_source, "out-of-band buffer", "opcode not used by checkpoints");
                default: throw Malformed($"unsupported opcode 0x{op:x2}");
            }
        }
    }

    // BUILD sets an object's state: OrderedDict state_dicts carry {'_metadata': ...} (versions of modules), which a
    // plain dict of tensors does not need. Nothing else is allowed to receive state.
    void Build(object? state, object? target)
    {
        if (target is Dictionary<object, object?> && state is null or Dictionary<object, object?>) return;
        if (target is TensorRef && state is null or Dictionary<object, object?> { Count: 0 }) return;
        throw Malformed("BUILD on an object that takes no state");
    }

    void SetItems(Dictionary<object, object?> dict, IReadOnlyList<object?> items)
    {
        if (items.Count % 2 != 0) throw Malformed("odd number of dict items");
        for (int i = 0; i < items.Count; i += 2) dict[Key(items[i])] = items[i + 1];
    }

    object Key(object? key) => key switch
    {
        string or long or bool or double => key,
        _ => throw Malformed($"dict key of type {key?.GetType().Name ?? "None"} is not supported"),
    };

    object? MemoGet(long index) => _memo.TryGetValue(index, out var v) ? v : throw Malformed($"memo entry {index} is missing");

    List<object?> PopMark()
    {
        if (_metastack.Count == 0) throw Malformed("no MARK on the stack");
        var items = _current;
        _current = _metastack.Pop();
        return items;
    }

    void Push(object? value) => _current.Add(value);

    object? Pop()
    {
        if (_current.Count == 0) throw Malformed("stack underflow");
        var value = _current[^1];
        _current.RemoveAt(_current.Count - 1);
        return value;
    }

    object? Peek() => _current.Count > 0 ? _current[^1] : throw Malformed("stack underflow");

    List<object?> AsList(object? o) => o as List<object?> ?? throw Malformed("append to something that is not a list");

    Dictionary<object, object?> AsDict(object? o) => o as Dictionary<object, object?> ?? throw Malformed("set item on something that is not a dict");

    HashSet<object?> AsSet(object? o) => o as HashSet<object?> ?? throw Malformed("add to something that is not a set");

    long Int(object? o) => o is long l ? l : throw Malformed("expected an int");

    long[] Longs(object? o) => o is object?[] items ? items.Select(Int).ToArray() : throw Malformed("expected a tuple of ints");

    byte ReadByte() => _pos < _data.Length ? _data[_pos++] : throw Malformed("truncated pickle");

    ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Malformed("truncated pickle");
        var span = _data.AsSpan(_pos, n);
        _pos += n;
        return span;
    }

    int Length(long n) => n >= 0 && n <= _data.Length - _pos ? (int)n : throw Malformed("truncated pickle");

    int Length(ulong n) => n <= (ulong)(_data.Length - _pos) ? (int)n : throw Malformed("truncated pickle");

    string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Malformed("truncated pickle");
        string line = Encoding.UTF8.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return line;
    }

    static string Utf8(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    object ParseIntLine(string s) => s switch { "00" => false, "01" => true, _ => ParseLong(s) };

    long ParseLong(string s) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? v : throw Malformed($"bad integer '{s}'");

    long LittleEndianInt(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > 8) throw Malformed("integer larger than 64 bits");
        if (bytes.Length == 0) return 0;
        long v = 0;
        for (int i = bytes.Length - 1; i >= 0; i--) v = (v << 8) | bytes[i];
        int unused = 64 - 8 * bytes.Length;
        return unused == 0 ? v : (v << unused) >> unused; // sign-extend
    }

    CheckpointFormatException Malformed(string what) => new($"{_source}: malformed checkpoint pickle at byte {_pos}: {what}");
}
