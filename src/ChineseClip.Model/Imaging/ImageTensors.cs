// The image transform's output as a batch tensor: the one torch-facing step of the transform, kept here so that the
// transform itself (ChineseClip.Model.Inputs) needs no libtorch.
using static TorchSharp.torch;

namespace ChineseClip.Model.Imaging;

public static class ImageTensors
{
    /// <summary>[N, 3, R, R] float32 pixels of several encoded images.</summary>
    public static Tensor ToTensor(this ImageTransform transform, IReadOnlyList<byte[]> encoded)
    {
        int size = 3 * transform.Resolution * transform.Resolution;
        var data = new float[encoded.Count * size];
        Parallel.For(0, encoded.Count, i => transform.ToPixels(encoded[i], data.AsSpan(i * size, size)));
        return tensor(data, [encoded.Count, 3, transform.Resolution, transform.Resolution]);
    }
}
