// The one place that maps a backend name to an IClipEncoder implementation; everything else takes an IClipEncoder.
using ChineseClip.Model;
using ChineseClip.Model.Inference;

namespace ChineseClip.Search;

/// <summary>How the onnx backend finds its graphs: an export folder given by the user, else one made from the
/// checkpoint under <see cref="Cache"/> (default: cnclip-onnx-cache in the temporary folder). Threads: ONNX Runtime's
/// intra-op threads (0: its default, every core).</summary>
public sealed record EncoderSettings(string? OnnxExport = null, string? Cache = null, int Threads = 0);

public static class ClipEncoders
{
    public const string Torch = "torch";
    public const string Onnx = "onnx";

    /// <summary>The backends this build knows.</summary>
    public static readonly string[] Backends = [Torch, Onnx];

    /// <summary>An encoder of <paramref name="backend"/> for the model (its checkpoint and vocab) and architecture.</summary>
    public static IClipEncoder Create(string backend, ModelInfo model, ClipConfig config, EncoderSettings? settings = null)
    {
        settings ??= new EncoderSettings();
        switch (backend)
        {
            case Torch:
                if (settings.OnnxExport is not null) throw new ArgumentException("an ONNX export folder is for the onnx backend");
                return TorchClipEncoder.Load(config, model.Checkpoint, model.ContextLength);
            case Onnx:
                string folder = settings.OnnxExport
                    ?? OnnxExports.Ensure(settings.Cache ?? Path.Combine(Path.GetTempPath(), "cnclip-onnx-cache"), model, config);
                var onnx = OnnxExports.Open(folder, config, model.Vocab, settings.Threads);
                string? problem = onnx.ContextLength < model.ContextLength
                    ? $"{folder}: exported for texts of at most {onnx.ContextLength} tokens, not {model.ContextLength}"
                    : onnx.Metadata.GetValueOrDefault(ChineseClip.Onnx.Export.OnnxMetadata.CheckpointSha256, "") is { Length: > 0 } sha && sha != model.Sha256
                        ? $"{folder}: exported from another checkpoint than {model.Checkpoint} (checkpoint_sha256 {sha})"
                        : null;
                if (problem is null) return onnx;
                onnx.Dispose();
                throw new InvalidDataException(problem);
            default:
                throw new ArgumentException($"backend '{backend}': expected one of {string.Join(", ", Backends)}");
        }
    }
}
