// The rules of the onnx package's checker that matter for our graphs, as a test-side validator (Python's onnx is not
// available here): an opset import, every name defined once, every node input produced by a graph input, an
// initializer or an earlier node (so the nodes are topologically sorted and nothing dangles), every output produced,
// operators known at the model's opset with the attribute/input form of that opset, and initializer data present and
// of the declared size (inline, or within the external data file).
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Tests;

public static class OnnxChecker
{
    // The operators the exporter may emit, with the opset that introduced the form it uses.
    static readonly Dictionary<string, int> Since = new()
    {
        ["Add"] = 14, ["Sub"] = 14, ["Mul"] = 14, ["Div"] = 14, ["MatMul"] = 13, ["Sqrt"] = 13, ["Erf"] = 13, ["Sigmoid"] = 13,
        ["Relu"] = 14, ["Softmax"] = 13, ["Reshape"] = 14, ["Transpose"] = 13, ["Concat"] = 13, ["Gather"] = 13,
        ["Slice"] = 13, ["Shape"] = 13, ["Expand"] = 13, ["Split"] = 13, ["Unsqueeze"] = 13, ["Cast"] = 13, ["Equal"] = 13,
        ["Identity"] = 14, ["Conv"] = 11, ["AveragePool"] = 11, ["ReduceMean"] = 13, ["ReduceL2"] = 13,
        ["LayerNormalization"] = 17,
    };

    public static ModelProto Load(string path)
    {
        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream);
    }

    /// <summary>Every rule broken, one line each (empty when the model is valid).</summary>
    public static List<string> Problems(ModelProto model, string folder)
    {
        var problems = new List<string>();
        var opset = model.OpsetImport.FirstOrDefault(o => o.Domain == "");
        if (opset is null || opset.Version <= 0) problems.Add("no opset import for the default domain");
        if (model.IrVersion < 7) problems.Add($"ir_version {model.IrVersion}");
        long version = opset?.Version ?? 0;
        GraphProto g = model.Graph;
        if (g is null) return [.. problems, "no graph"];
        if (string.IsNullOrEmpty(g.Name)) problems.Add("the graph has no name");

        var defined = new HashSet<string>();
        void Define(string name, string what)
        {
            if (string.IsNullOrEmpty(name)) problems.Add($"{what} has an empty name");
            else if (!defined.Add(name)) problems.Add($"{what} '{name}' is defined twice");
        }
        foreach (var input in g.Input)
        {
            Define(input.Name, "graph input");
            if (input.Type?.TensorType is not { } t || t.ElemType == 0 || t.Shape is null) problems.Add($"graph input '{input.Name}' has no tensor type and shape");
        }
        foreach (var init in g.Initializer)
        {
            Define(init.Name, "initializer");
            CheckData(init, folder, problems);
        }
        var used = new HashSet<string>();
        foreach (var node in g.Node)
        {
            if (!Since.TryGetValue(node.OpType, out int since) || node.Domain.Length > 0)
                problems.Add($"node {node.Name}: operator {node.Domain}:{node.OpType} is not one the exporter may use");
            else if (since > version) problems.Add($"node {node.Name}: {node.OpType} needs opset {since}, the model imports {version}");
            if (node.OpType is "ReduceMean" or "ReduceL2")
            {
                bool axesAttribute = node.Attribute.Any(a => a.Name == "axes");
                if (version >= 18 && axesAttribute) problems.Add($"node {node.Name}: {node.OpType} takes axes as an input from opset 18");
                if (version < 18 && node.Input.Count > 1) problems.Add($"node {node.Name}: {node.OpType} takes axes as an attribute before opset 18");
            }
            foreach (string input in node.Input)
            {
                if (input.Length == 0) continue;
                if (!defined.Contains(input)) problems.Add($"node {node.Name} ({node.OpType}): input '{input}' is not produced before it");
                used.Add(input);
            }
            foreach (string output in node.Output) Define(output, $"output of node {node.Name}");
        }
        foreach (var output in g.Output)
        {
            if (!defined.Contains(output.Name)) problems.Add($"graph output '{output.Name}' is not produced");
            if (output.Type?.TensorType is not { } t || t.ElemType == 0 || t.Shape is null) problems.Add($"graph output '{output.Name}' has no tensor type and shape");
            used.Add(output.Name);
        }
        foreach (var init in g.Initializer.Where(i => !used.Contains(i.Name))) problems.Add($"initializer '{init.Name}' is never used");
        foreach (var input in g.Input.Where(i => !used.Contains(i.Name))) problems.Add($"graph input '{input.Name}' is never used");
        return problems;
    }

    static void CheckData(TensorProto t, string folder, List<string> problems)
    {
        long elements = t.Dims.Aggregate(1L, (a, d) => a * d);
        long size = (DataType)t.DataType switch
        {
            DataType.Float => 4, DataType.Float16 => 2, DataType.Int64 => 8,
            var other => -1,
        };
        if (size < 0) { problems.Add($"initializer '{t.Name}': unexpected type {(DataType)t.DataType}"); return; }
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
        {
            var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            string path = Path.Combine(folder, entries.GetValueOrDefault("location", ""));
            long offset = long.Parse(entries.GetValueOrDefault("offset", "0")), length = long.Parse(entries.GetValueOrDefault("length", "-1"));
            if (!File.Exists(path)) problems.Add($"initializer '{t.Name}': external file {path} missing");
            else if (length != elements * size || offset + length > new FileInfo(path).Length)
                problems.Add($"initializer '{t.Name}': external range {offset}+{length} does not hold {elements} x {size} bytes");
        }
        else if (t.RawData.Length != elements * size)
        {
            problems.Add($"initializer '{t.Name}': {t.RawData.Length} bytes of raw_data for {elements} x {size}");
        }
    }

    /// <summary>Asserts the exported file is valid; returns it.</summary>
    public static ModelProto AssertValid(string path)
    {
        var model = Load(path);
        var problems = Problems(model, Path.GetDirectoryName(path)!);
        Assert.True(problems.Count == 0, $"{path}:\n" + string.Join("\n", problems.Take(20)));
        return model;
    }
}
