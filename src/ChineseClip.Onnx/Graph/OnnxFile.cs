// Serialises a built graph as an ONNX model file. Protobuf cannot hold a message over 2 GiB, so a tower whose weights
// are larger (ViT-H-14 in float32) keeps them in one external data file beside the model, as the ONNX specification's
// external-data fields describe (location, offset, length; data_location = EXTERNAL), each tensor 4 KiB-aligned so
// that a runtime may map it.
using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ChineseClip.Onnx.Graph;

internal static class OnnxFile
{
    /// <summary>Weights up to this many bytes are stored in the model file itself (protobuf's limit less room for the graph).</summary>
    public const long InlineLimit = int.MaxValue - (64L << 20);

    /// <summary>Tensors smaller than this stay in the model file even when the rest goes to the data file.</summary>
    const long SmallTensor = 1024;

    const int Alignment = 4096;

    /// <summary>Total bytes of the graph's initializers.</summary>
    public static long WeightBytes(GraphBuilder g) => g.Graph.Initializer.Sum(ByteLength);

    static long ByteLength(TensorProto t) => t.Dims.Aggregate(1L, (a, d) => a * d) * (DataType)t.DataType switch
    {
        DataType.Float16 => 2,
        DataType.Float or DataType.Int32 => 4,
        DataType.Int64 or DataType.Double => 8,
        var other => throw new NotSupportedException($"initializer type {other}"),
    };

    /// <summary>Writes the model to <paramref name="modelPath"/>; when the weights exceed <paramref name="inlineLimit"/>,
    /// they go to <paramref name="dataPath"/>, which the model names as <paramref name="dataLocation"/> (a path relative to
    /// the model's final folder). Returns whether a data file was written.</summary>
    public static bool Write(GraphBuilder g, ModelProto model, string modelPath, string dataPath, string dataLocation, long inlineLimit = InlineLimit)
    {
        model.Graph = g.Graph;
        bool external = WeightBytes(g) > inlineLimit;
        if (external)
        {
            using var data = new FileStream(dataPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            foreach (TensorProto t in g.Graph.Initializer)
            {
                byte[] bytes = Produce(g, t);
                if (bytes.Length < SmallTensor)
                {
                    t.RawData = UnsafeByteOperations.UnsafeWrap(bytes);
                    continue;
                }
                long offset = (data.Position + Alignment - 1) / Alignment * Alignment;
                data.Write(new byte[offset - data.Position]);
                data.Write(bytes);
                t.DataLocation = TensorProto.Types.DataLocation.External;
                t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataLocation });
                t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
                t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString() });
            }
            data.Flush(flushToDisk: true);
        }
        else
        {
            foreach (TensorProto t in g.Graph.Initializer) t.RawData = UnsafeByteOperations.UnsafeWrap(Produce(g, t));
        }
        using (var stream = new FileStream(modelPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            model.WriteTo(stream);
            stream.Flush(flushToDisk: true);
        }
        // The bytes are not needed once written; drop them so that the next tower does not add to this one.
        foreach (TensorProto t in g.Graph.Initializer) t.RawData = ByteString.Empty;
        return external;
    }

    static byte[] Produce(GraphBuilder g, TensorProto t)
    {
        byte[] bytes = g.Data[t.Name]();
        if (bytes.Length != ByteLength(t))
            throw new InvalidOperationException($"initializer {t.Name}: {bytes.Length} bytes, expected {ByteLength(t)}");
        return bytes;
    }
}
