using static TorchSharp.torch;

namespace ChineseClip.Onnx.Export;

/// <summary>A model's weights by their official state_dict key (the tensors the model holds, not copies).</summary>
internal sealed class StateDict(IReadOnlyDictionary<string, Tensor> tensors)
{
    public Tensor this[string key] =>
        tensors.TryGetValue(key, out Tensor? t) ? t : throw new InvalidOperationException($"the model has no weight '{key}'");

    public bool Contains(string key) => tensors.ContainsKey(key);
}
