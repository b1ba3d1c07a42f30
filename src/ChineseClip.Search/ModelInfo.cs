// Which model a collection was embedded with: enough to load it again (checkpoint, arch, vocab, context length), to
// notice that the file changed (SHA-256), and where it came from when a stage schedule trained it.
using System.Security.Cryptography;
using System.Text.Json.Serialization;

namespace ChineseClip.Search;

public sealed record ModelInfo
{
    [JsonPropertyName("checkpoint")] public required string Checkpoint { get; init; }
    [JsonPropertyName("sha256")] public required string Sha256 { get; init; }
    /// <summary>VISION@TEXT or an architecture .json file.</summary>
    [JsonPropertyName("arch")] public required string Arch { get; init; }
    [JsonPropertyName("vocab")] public required string Vocab { get; init; }
    [JsonPropertyName("context_length")] public int ContextLength { get; init; } = Model.Text.ClipTokenizer.DefaultContextLength;
    /// <summary>The stage schedule and stage that trained the checkpoint, when one did.</summary>
    [JsonPropertyName("schedule")] public string? Schedule { get; init; }
    [JsonPropertyName("stage")] public string? Stage { get; init; }
    /// <summary>That stage's latest validation mean recall (percent), when known.</summary>
    [JsonPropertyName("recall")] public double? Recall { get; init; }

    /// <summary>A model description of a checkpoint file on disk (its SHA-256 computed now).</summary>
    public static ModelInfo Of(string checkpoint, string arch, string vocab, int contextLength, string? schedule = null, string? stage = null, double? recall = null)
    {
        if (!File.Exists(checkpoint)) throw new FileNotFoundException($"{checkpoint}: checkpoint not found", checkpoint);
        if (!File.Exists(vocab)) throw new FileNotFoundException($"{vocab}: vocab file not found", vocab);
        // An architecture file is kept by its full path; a VISION@TEXT name as it is.
        string archValue = File.Exists(arch) ? Path.GetFullPath(arch) : arch;
        return new ModelInfo
        {
            Checkpoint = Path.GetFullPath(checkpoint), Sha256 = Sha256Of(checkpoint), Arch = archValue, Vocab = Path.GetFullPath(vocab),
            ContextLength = contextLength, Schedule = schedule, Stage = stage, Recall = recall,
        };
    }

    public static string Sha256Of(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>Same weights and the same way of reading texts: vectors of one are comparable with the other's.</summary>
    public bool SameModel(ModelInfo other) =>
        Sha256 == other.Sha256 && Arch == other.Arch && ContextLength == other.ContextLength && Vocab == other.Vocab;
}
