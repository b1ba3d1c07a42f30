using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>Strict loading of a state dict into a model's tensors: every key present, none extra, shapes equal.</summary>
public static class StateDictCheck
{
    /// <summary>Throws <see cref="CheckpointMismatchException"/> listing every missing, unexpected and mis-shaped key.</summary>
    /// <param name="expected">The model's state dict.</param>
    /// <param name="loaded">What was read from a checkpoint.</param>
    public static void Compare(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> loaded)
    {
        var missing = expected.Keys.Where(k => !loaded.ContainsKey(k)).ToList();
        var unexpected = loaded.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        var misShaped = expected
            .Where(kv => loaded.TryGetValue(kv.Key, out var t) && !kv.Value.shape.SequenceEqual(t.shape))
            .Select(kv => $"{kv.Key}: model {TensorBytes.Shape(kv.Value)}, checkpoint {TensorBytes.Shape(loaded[kv.Key])}")
            .ToList();
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
            throw new CheckpointMismatchException(missing, unexpected, misShaped);
    }

    /// <summary>
    /// After <see cref="Compare"/> passes, copies every loaded value into the model's tensor in place (converting the
    /// dtype, e.g. fp16 checkpoints into fp32 parameters, and the device), without recording gradients.
    /// </summary>
    public static void CopyInto(IReadOnlyDictionary<string, Tensor> modelState, IReadOnlyDictionary<string, Tensor> loaded)
    {
        Compare(modelState, loaded);
        using var _ = torch.no_grad();
        foreach (var (key, target) in modelState) target.copy_(loaded[key]);
    }
}
