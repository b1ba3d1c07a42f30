using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// The dtypes a checkpoint may hold, with their names in torch.save pickles and in safetensors headers, and the raw
/// little-endian byte copy between tensors and streams that both file formats share.
/// </summary>
internal static class TensorBytes
{
    internal sealed record DType(ScalarType Type, string StorageName, string SafetensorsName, int ElementSize);

    static readonly DType[] All =
    [
        new(ScalarType.Float32, "FloatStorage", "F32", 4),
        new(ScalarType.Float16, "HalfStorage", "F16", 2),
        new(ScalarType.BFloat16, "BFloat16Storage", "BF16", 2),
        new(ScalarType.Float64, "DoubleStorage", "F64", 8),
        new(ScalarType.Int64, "LongStorage", "I64", 8),
        new(ScalarType.Int32, "IntStorage", "I32", 4),
        new(ScalarType.Int16, "ShortStorage", "I16", 2),
        new(ScalarType.Int8, "CharStorage", "I8", 1),
        new(ScalarType.Byte, "ByteStorage", "U8", 1),
        new(ScalarType.Bool, "BoolStorage", "BOOL", 1),
    ];

    const int BufferSize = 1 << 20;

    public static DType? FromStorageName(string name) => All.FirstOrDefault(d => d.StorageName == name);

    public static DType? FromSafetensorsName(string name) => All.FirstOrDefault(d => d.SafetensorsName == name);

    public static DType Of(ScalarType type) =>
        All.FirstOrDefault(d => d.Type == type) ?? throw new NotSupportedException($"tensors of dtype {type} cannot be written to a checkpoint");

    /// <summary>
    /// A CPU, contiguous tensor with the same values; the same storage where possible. The caller disposes the result
    /// (a new handle in every case).
    /// </summary>
    public static Tensor CpuContiguous(Tensor t)
    {
        using var cpu = t.device_type == DeviceType.CPU ? t.alias() : t.cpu();
        return cpu.contiguous();
    }

    /// <summary>Writes the element bytes of a CPU contiguous tensor (its view, offset included).</summary>
    public static void Write(Tensor contiguousCpu, Stream stream)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("checkpoint files are little-endian");
        contiguousCpu.WriteBytesToStream(stream, BufferSize);
    }

    /// <summary>A new contiguous tensor of the given shape filled from the stream.</summary>
    public static Tensor Read(Stream stream, DType dtype, long[] shape)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("checkpoint files are little-endian");
        var t = torch.empty(shape, dtype.Type, device: CPU);
        try
        {
            t.ReadBytesFromStream(stream, BufferSize);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    public static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
