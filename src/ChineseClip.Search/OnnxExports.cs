// ONNX exports for the onnx backend: made once per checkpoint into a cache folder, or given by the user; checked
// against the model they must stand for.
using System.Security.Cryptography;
using System.Text;
using ChineseClip.Model;
using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Runtime;

namespace ChineseClip.Search;

public static class OnnxExports
{
    /// <summary>Bump when the exporter's graphs change, so that older cached exports are not used.</summary>
    public const int CacheFormat = 1;

    /// <summary>The export of <paramref name="model"/> (fp32, default opset) under <paramref name="cacheRoot"/>, written
    /// the first time: into a temporary folder that is renamed into place once complete, so a half-written export is
    /// never used and two processes racing both end with a whole one.</summary>
    public static string Ensure(string cacheRoot, ModelInfo model, ClipConfig config)
    {
        string vocabSha = ModelInfo.Sha256Of(model.Vocab);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{model.Sha256}|{model.Arch}|{config}|{vocabSha}|{model.ContextLength}|fp32|{OnnxOpsets.Default}|{CacheFormat}")))[..24];
        string final = Path.Combine(Path.GetFullPath(cacheRoot), key);
        if (Directory.Exists(final)) return final;
        Directory.CreateDirectory(cacheRoot);
        string temporary = Path.Combine(Path.GetFullPath(cacheRoot), $".tmp-{key}-{Guid.NewGuid():N}");
        try
        {
            using (var clip = ClipModel.Load(config, model.Checkpoint))
            {
                clip.eval();
                OnnxExporter.Export(clip, temporary, new OnnxExportOptions
                {
                    ContextLength = model.ContextLength, VocabSha256 = vocabSha, Checkpoint = Path.GetFileName(model.Checkpoint),
                    CheckpointSha256 = model.Sha256,
                });
            }
            try { Directory.Move(temporary, final); }
            catch (IOException) when (Directory.Exists(final)) { } // another process finished the same export first
        }
        finally
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        }
        return final;
    }

    /// <summary>Opens an export folder and checks that it stands for <paramref name="config"/> (when given) and was
    /// exported with <paramref name="vocab"/>; errors name the folder or the file.</summary>
    public static OnnxClipEncoder Open(string folder, ClipConfig? config, string vocab, int threads = 0)
    {
        var onnx = OnnxClipEncoder.FromExport(folder, new OnnxEncoderOptions { Threads = threads });
        try
        {
            if (config is not null && config with { Name = onnx.Config.Name } != onnx.Config)
                throw new InvalidDataException($"{folder}: exported for {onnx.Config.Name}, which differs from {config.Name}");
            string expected = onnx.Metadata.GetValueOrDefault(OnnxMetadata.VocabSha256, "");
            if (expected.Length > 0 && ModelInfo.Sha256Of(vocab) != expected)
                throw new InvalidDataException($"{vocab}: not the vocab {folder} was exported with (its SHA-256 differs from vocab_sha256 {expected})");
            return onnx;
        }
        catch
        {
            onnx.Dispose();
            throw;
        }
    }
}
