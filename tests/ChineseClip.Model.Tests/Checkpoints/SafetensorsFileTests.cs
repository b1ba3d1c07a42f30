using System.Buffers.Binary;
using System.Text;
using ChineseClip.Model.Checkpoints;

namespace ChineseClip.Model.Tests.Checkpoints;

public sealed class SafetensorsFileTests : IDisposable
{
    readonly CheckpointTestKit _kit = new();

    string WithHeader(string name, string json, int dataBytes)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, header.Length);
        header.CopyTo(bytes, 8);
        string path = _kit.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void A_header_naming_a_tensor_twice_is_a_format_error_naming_the_file()
    {
        string path = WithHeader("twice.safetensors",
            """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", 8);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Load(path));
        Assert.StartsWith($"{path}: ", e.Message);
    }

    [Fact]
    public void A_shape_whose_byte_size_overflows_is_a_format_error()
    {
        string path = WithHeader("overflow.safetensors", """{"w": {"dtype": "F32", "shape": [2305843009213693952], "data_offsets": [0, 0]}}""", 8);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Load(path));
        Assert.StartsWith($"{path}: ", e.Message);
    }

    public void Dispose() => _kit.Dispose();
}
