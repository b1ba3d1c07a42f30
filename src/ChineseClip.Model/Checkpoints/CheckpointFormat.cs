using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>Reads model weights from whichever supported file it is given, as an official-key state dict.</summary>
public static class CheckpointFormat
{
    /// <summary>
    /// A torch.save zip (official checkpoint or plain state dict; the optimizer is not read) or a safetensors file
    /// with official or Hugging Face ChineseCLIPModel keys (told apart by the keys). The format is detected from the
    /// content, not the extension. Keys come back without <c>module.</c>, in file order.
    /// </summary>
    public static Dictionary<string, Tensor> LoadAnyStateDict(string path)
    {
        Span<byte> head = stackalloc byte[9];
        long length;
        using (var stream = TorchArchiveReader.OpenFile(path))
        {
            head = head[..stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)];
            length = stream.Length;
        }
        if (!SafetensorsFile.LooksLike(head, length)) return OfficialCheckpoint.Load(path, loadOptimizer: false).StateDict;

        var tensors = SafetensorsFile.Load(path);
        if (!HfMapping.IsHf(tensors.Keys)) return OfficialCheckpoint.Normalize(path, tensors);
        try
        {
            return HfMapping.FromHf(tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
