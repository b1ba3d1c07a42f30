// The one place that maps a backend name to an IClipEncoder implementation; everything else takes an IClipEncoder.
using ChineseClip.Model;
using ChineseClip.Model.Inference;

namespace ChineseClip.Search;

public static class ClipEncoders
{
    public const string Torch = "torch";

    /// <summary>The backends this build knows.</summary>
    public static readonly string[] Backends = [Torch];

    /// <summary>An encoder of <paramref name="backend"/> for the checkpoint and architecture.</summary>
    public static IClipEncoder Create(string backend, ClipConfig config, string checkpoint, int contextLength) => backend switch
    {
        Torch => TorchClipEncoder.Load(config, checkpoint, contextLength),
        _ => throw new ArgumentException($"backend '{backend}': expected one of {string.Join(", ", Backends)}"),
    };
}
