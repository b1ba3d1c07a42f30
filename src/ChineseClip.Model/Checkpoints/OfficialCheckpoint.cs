using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// A checkpoint in the official Chinese-CLIP layout: a torch.save zip of
/// <c>{"epoch": int, "step": int, "name": str, "state_dict": {"module." + key: tensor}, "optimizer": ...}</c>.
/// <see cref="StateDict"/> holds the official keys without <c>module.</c> and without <c>bert.pooler.*</c> (the
/// official loader drops those), in file order. Released checkpoints have no optimizer.
/// <para>
/// The optimizer (and <see cref="Extra"/>) is plain data: null, bool, long, double, string, Tensor, object?[] (tuple),
/// List&lt;object?&gt;, Dictionary&lt;object, object?&gt;. Save also takes int/float, arrays and other ILists and
/// IDictionaries; what is read back is the types above (ints as long, tuples as object?[]). For torch's layout:
/// <c>{"state": {0L: {"step": tensor, "exp_avg": tensor, "exp_avg_sq": tensor}}, "param_groups": [{..., "params": [0L, ..]}]}</c>.
/// </para>
/// </summary>
public sealed record OfficialCheckpoint
{
    const string ModulePrefix = "module.";

    public int? Epoch { get; init; }

    public long? Step { get; init; }

    public string? Name { get; init; }

    public required Dictionary<string, Tensor> StateDict { get; init; }

    public object? Optimizer { get; init; }

    /// <summary>Other top-level entries of the file, kept and written back.</summary>
    public Dictionary<string, object?> Extra { get; init; } = new();

    /// <summary>
    /// Reads an official checkpoint, or a plain state dict saved with torch.save (keys with or without
    /// <c>module.</c>). Only the globals of a tensor checkpoint are accepted (<see cref="UnsafePickleException"/>).
    /// </summary>
    /// <param name="loadOptimizer">false skips reading the optimizer's tensors (Optimizer is then null).</param>
    public static OfficialCheckpoint Load(string path, bool loadOptimizer = true)
    {
        using var archive = TorchArchiveReader.Open(path);
        var root = archive.ReadPickle();
        if (root is not Dictionary<object, object?> top)
            throw new CheckpointFormatException($"{path}: the pickle holds a {Describe(root)}, not a dict");

        if (top.TryGetValue("state_dict", out var sd) && sd is Dictionary<object, object?>)
        {
            if (!loadOptimizer) top.Remove("optimizer");
            archive.Materialize(top);
            var extra = new Dictionary<string, object?>();
            foreach (var (key, value) in top)
            {
                if (key is not string name)
                    throw new CheckpointFormatException($"{path}: top-level key {key} is not a string");
                if (name is not ("epoch" or "step" or "name" or "state_dict" or "optimizer")) extra[name] = value;
            }
            return new OfficialCheckpoint
            {
                Epoch = Integer(path, "epoch", top.GetValueOrDefault("epoch")) is { } epoch ? checked((int)epoch) : null,
                Step = Integer(path, "step", top.GetValueOrDefault("step")),
                Name = top.TryGetValue("name", out var n) ? n as string ?? (n is null ? null : throw Bad(path, "name", n)) : null,
                StateDict = ToStateDict(path, (Dictionary<object, object?>)top["state_dict"]!),
                Optimizer = top.GetValueOrDefault("optimizer"),
                Extra = extra,
            };
        }
        if (top.Values.All(v => v is RestrictedUnpickler.TensorRef))
        {
            archive.Materialize(top);
            return new OfficialCheckpoint { StateDict = ToStateDict(path, top) };
        }
        throw new CheckpointFormatException($"{path}: neither an official checkpoint (a dict with 'state_dict') nor a plain state dict of tensors");
    }

    /// <summary>Writes the official layout atomically (temporary file, fsync, rename); loadable by torch.load.</summary>
    public void Save(string path)
    {
        var top = new Dictionary<string, object?>();
        if (Epoch is { } epoch) top["epoch"] = epoch;
        if (Step is { } step) top["step"] = step;
        if (Name is not null) top["name"] = Name;
        top["state_dict"] = new TorchArchiveWriter.OrderedDictValue(StateDict.ToDictionary(kv => ModulePrefix + kv.Key, kv => kv.Value));
        if (Optimizer is not null) top["optimizer"] = Optimizer;
        foreach (var (key, value) in Extra)
            if (!top.TryAdd(key, value)) throw new ArgumentException($"extra entry '{key}' clashes with a checkpoint field");
        TorchArchiveWriter.Save(path, top);
    }

    /// <summary>Writes <c>{"epoch", "step", "name", "state_dict": OrderedDict("module." + key), "optimizer"?}</c>.</summary>
    public static void Save(string path, Dictionary<string, Tensor> stateDict, int? epoch, long? step, string? name, object? optimizer = null) =>
        new OfficialCheckpoint { StateDict = stateDict, Epoch = epoch, Step = step, Name = name, Optimizer = optimizer }.Save(path);

    /// <summary>Official keys: <c>module.</c> stripped, <c>bert.pooler.*</c> dropped (and disposed), order kept.</summary>
    internal static Dictionary<string, Tensor> Normalize(string path, IEnumerable<KeyValuePair<string, Tensor>> entries)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (raw, tensor) in entries)
        {
            string key = raw.StartsWith(ModulePrefix, StringComparison.Ordinal) ? raw[ModulePrefix.Length..] : raw;
            if (key.StartsWith("bert.pooler.", StringComparison.Ordinal))
            {
                tensor.Dispose();
                continue;
            }
            if (!result.TryAdd(key, tensor))
                throw new CheckpointFormatException($"{path}: key '{key}' appears twice (with and without '{ModulePrefix}')");
        }
        return result;
    }

    static Dictionary<string, Tensor> ToStateDict(string path, Dictionary<object, object?> dict) =>
        Normalize(path, dict.Select(kv => kv is { Key: string key, Value: Tensor t }
            ? KeyValuePair.Create(key, t)
            : throw new CheckpointFormatException($"{path}: state_dict entry {kv.Key} holds a {Describe(kv.Value)}, not a tensor")));

    static long? Integer(string path, string field, object? value) => value switch
    {
        null => null,
        long l => l,
        _ => throw Bad(path, field, value),
    };

    static CheckpointFormatException Bad(string path, string field, object? value) =>
        new($"{path}: '{field}' holds a {Describe(value)}");

    static string Describe(object? value) => value?.GetType().Name ?? "None";
}
