// Writes one ONNX graph node by node. Nodes are appended in the order they are built and every node reads only graph
// inputs, initializers or outputs of nodes built before it, so the graph is topologically sorted by construction.
// Weights are not copied when they are named: each initializer keeps a function that produces its bytes, called once
// when the file is written (OnnxFile), so a large tower never sits in memory twice.
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Graph;

/// <summary>The element type of a tower's weights and activations. Inputs and outputs stay float32 either way.</summary>
public enum OnnxPrecision { Fp32, Fp16 }

/// <summary>One dimension of a graph input or output: a size, or a symbolic name such as "batch".</summary>
public readonly record struct Dim(long Size, string? Name)
{
    public static implicit operator Dim(long size) => new(size, null);
    public static implicit operator Dim(string name) => new(0, name);
}

internal sealed class GraphBuilder
{
    readonly GraphProto _graph = new();
    readonly Dictionary<string, Func<byte[]>> _data = [];
    readonly Dictionary<string, string> _constants = [];
    readonly Dictionary<string, int> _prefixCounts = [];
    readonly HashSet<string> _names = [];

    public GraphBuilder(string name, int opset, OnnxPrecision precision)
    {
        _graph.Name = name;
        Opset = opset;
        Precision = precision;
    }

    public int Opset { get; }
    public OnnxPrecision Precision { get; }

    /// <summary>The type the tower computes in.</summary>
    public DataType Compute => Precision == OnnxPrecision.Fp16 ? DataType.Float16 : DataType.Float;

    public GraphProto Graph => _graph;

    /// <summary>Bytes of each initializer, produced when the file is written.</summary>
    public IReadOnlyDictionary<string, Func<byte[]>> Data => _data;

    string Claim(string name)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"ONNX value name '{name}' used twice");
        return name;
    }

    /// <summary>A fresh value name under <paramref name="prefix"/> (e.g. "text/layer3/attn").</summary>
    public string Fresh(string prefix)
    {
        int n = _prefixCounts.GetValueOrDefault(prefix);
        _prefixCounts[prefix] = n + 1;
        return Claim($"{prefix}_{n}");
    }

    // ---- inputs, outputs, initializers ----

    public string Input(string name, DataType type, params Dim[] dims)
    {
        _graph.Input.Add(ValueInfo(Claim(name), type, dims));
        return name;
    }

    /// <summary>Declares <paramref name="value"/> a graph output named <paramref name="name"/> (an Identity renames it).</summary>
    public void Output(string value, string name, DataType type, params Dim[] dims)
    {
        if (value != name) Node("Identity", [value], output: name);
        _graph.Output.Add(ValueInfo(name, type, dims));
    }

    /// <summary>Declares an existing value a graph output under its own name.</summary>
    public void DeclareOutput(string name, DataType type, params Dim[] dims) => _graph.Output.Add(ValueInfo(name, type, dims));

    static ValueInfoProto ValueInfo(string name, DataType type, Dim[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d.Name is null ? new TensorShapeProto.Types.Dimension { DimValue = d.Size } : new TensorShapeProto.Types.Dimension { DimParam = d.Name });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    /// <summary>A weight in the compute type. <paramref name="produce"/> returns the tensor as the graph uses it (already
    /// transposed or folded); it runs when the file is written, under its own dispose scope.</summary>
    public string Weight(string name, long[] shape, Func<Tensor> produce) => Weight(name, shape, Compute, produce);

    /// <summary>A weight kept in float32 whatever the precision (LayerNorm's scale and bias: LayerNorm runs in float32).</summary>
    public string Fp32Weight(string name, long[] shape, Func<Tensor> produce) => Weight(name, shape, DataType.Float, produce);

    string Weight(string name, long[] shape, DataType type, Func<Tensor> produce)
    {
        ScalarType scalar = type == DataType.Float16 ? ScalarType.Float16 : ScalarType.Float32;
        AddInitializer(Claim(name), type, shape, () =>
        {
            using var scope = NewDisposeScope();
            Tensor t = produce().detach().to(scalar).contiguous().cpu();
            if (!t.shape.SequenceEqual(shape))
                throw new InvalidOperationException($"weight {name}: shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}]");
            return t.bytes.ToArray();
        });
        return name;
    }

    void AddInitializer(string name, DataType type, long[] shape, Func<byte[]> bytes)
    {
        var proto = new TensorProto { Name = name, DataType = (int)type };
        proto.Dims.Add(shape);
        _graph.Initializer.Add(proto);
        _data[name] = bytes;
    }

    /// <summary>A float constant in the compute type (a scalar unless <paramref name="shape"/> is given).</summary>
    public string Float(float value) => Constant($"const_f{(Precision == OnnxPrecision.Fp16 ? "16" : "32")}_{value:R}", Compute, [],
        Precision == OnnxPrecision.Fp16 ? BitConverter.GetBytes((Half)value) : BitConverter.GetBytes(value));

    /// <summary>An int64 constant: a scalar, or a 1-D tensor when <paramref name="scalar"/> is false.</summary>
    public string Int64s(long[] values, bool scalar = false)
    {
        if (scalar && values.Length != 1) throw new ArgumentException("a scalar holds one value", nameof(values));
        return Constant($"const_i64{(scalar ? "s" : "")}_{string.Join("_", values).Replace('-', 'm')}", DataType.Int64,
            scalar ? [] : [values.Length], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    string Constant(string key, DataType type, long[] shape, byte[] bytes)
    {
        if (_constants.TryGetValue(key, out string? name)) return name;
        name = Claim(key);
        AddInitializer(name, type, shape, () => bytes);
        _constants[key] = name;
        return name;
    }

    // ---- nodes ----

    /// <summary>Appends a node; returns its output's name.</summary>
    public string Node(string op, string[] inputs, IEnumerable<AttributeProto>? attributes = null, string? output = null) =>
        Append(op, inputs, [output is null ? Fresh(op.ToLowerInvariant()) : Claim(output)], attributes)[0];

    /// <summary>Appends a node with several outputs.</summary>
    public string[] NodeN(string op, string[] inputs, int outputs, IEnumerable<AttributeProto>? attributes = null) =>
        Append(op, inputs, Enumerable.Range(0, outputs).Select(_ => Fresh(op.ToLowerInvariant())).ToArray(), attributes);

    string[] Append(string op, string[] inputs, string[] outputs, IEnumerable<AttributeProto>? attributes)
    {
        foreach (string input in inputs)
            if (input.Length > 0 && !_names.Contains(input)) throw new InvalidOperationException($"{op}: input '{input}' is not defined yet");
        var node = new NodeProto { OpType = op, Name = $"{op}_{_graph.Node.Count}" };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        if (attributes is not null) node.Attribute.Add(attributes);
        _graph.Node.Add(node);
        return outputs;
    }

    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attr(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.Add(values);
        return a;
    }

    public static AttributeProto StringAttr(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };
}
