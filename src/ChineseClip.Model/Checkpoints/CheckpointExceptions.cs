namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// A pickle asked for a Python global outside the tensor-checkpoint allowlist (the spirit of
/// <c>torch.load(weights_only=True)</c>). Raised while parsing, before any tensor or object is built.
/// </summary>
public sealed class UnsafePickleException(string path, string global, string detail)
    : Exception($"{path}: refused to unpickle '{global}' ({detail}); only the globals of a tensor checkpoint are allowed")
{
    /// <summary>The file (and archive entry) being read.</summary>
    public string Path { get; } = path;

    /// <summary>The refused global as <c>module.name</c>, or the refused opcode.</summary>
    public string Global { get; } = global;
}

/// <summary>A checkpoint file that cannot be read: not a zip, truncated, a missing storage entry, a malformed pickle.</summary>
public sealed class CheckpointFormatException : Exception
{
    public CheckpointFormatException(string message) : base(message) { }

    public CheckpointFormatException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A loaded state dict does not fit the model: missing, unexpected or mis-shaped keys, one per message line.</summary>
public sealed class CheckpointMismatchException(
    IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> misShaped)
    : Exception(Describe(missing, unexpected, misShaped))
{
    public IReadOnlyList<string> Missing { get; } = missing;

    public IReadOnlyList<string> Unexpected { get; } = unexpected;

    /// <summary>One entry per key: <c>key: model [..], checkpoint [..]</c>.</summary>
    public IReadOnlyList<string> MisShaped { get; } = misShaped;

    static string Describe(IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> misShaped)
    {
        var lines = new List<string>
        {
            $"state dict does not match the model: {missing.Count} missing, {unexpected.Count} unexpected, {misShaped.Count} mis-shaped key(s)",
        };
        lines.AddRange(missing.Select(k => "missing: " + k));
        lines.AddRange(unexpected.Select(k => "unexpected: " + k));
        lines.AddRange(misShaped.Select(k => "mis-shaped: " + k));
        return string.Join('\n', lines);
    }
}
