// Writes image.onnx and text.onnx for a loaded ClipModel: the towers' operators emitted as ONNX graphs over the model's
// weights, with a dynamic batch (and token length), features L2-normalised and not, and metadata to use them by.
using System.Globalization;
using System.Reflection;
using ChineseClip.Model;
using ChineseClip.Onnx.Graph;
using Onnx;

namespace ChineseClip.Onnx.Export;

/// <summary>A request the exporter refuses (an opset it does not write, an existing file, a folder it cannot use).</summary>
public sealed class OnnxExportException(string message) : Exception(message);

public sealed record OnnxExportOptions
{
    public OnnxPrecision Precision { get; init; } = OnnxPrecision.Fp32;
    public int Opset { get; init; } = OnnxOpsets.Default;
    public bool Image { get; init; } = true;
    public bool Text { get; init; } = true;
    public int ContextLength { get; init; } = Model.Text.ClipTokenizer.DefaultContextLength;
    /// <summary>SHA-256 of the vocab.txt the text tower was trained with.</summary>
    public string VocabSha256 { get; init; } = OnnxMetadata.OfficialVocabSha256;
    /// <summary>SHA-256 and file name of the source checkpoint ("" when the weights did not come from a file).</summary>
    public string CheckpointSha256 { get; init; } = "";
    public string Checkpoint { get; init; } = "";
    /// <summary>Replace existing files (else an existing file is an error and nothing is written).</summary>
    public bool Overwrite { get; init; }
    /// <summary>Weights above this many bytes go to one external data file (tests lower it).</summary>
    internal long InlineLimit { get; init; } = OnnxFile.InlineLimit;
}

/// <summary>The opsets the exporter writes.</summary>
public static class OnnxOpsets
{
    public const int Min = Layers.MinOpset, Max = Layers.MaxOpset, Default = Layers.DefaultOpset;

    /// <summary>The ONNX IR version that goes with an opset (the ONNX release that introduced the opset).</summary>
    internal static long IrVersion(int opset) => opset switch
    {
        14 => 7,
        <= 18 => 8,
        <= 20 => 9,
        _ => 10,
    };
}

public static class OnnxExporter
{
    /// <summary>Exports the chosen towers of <paramref name="model"/> into <paramref name="outputDir"/>; all files appear
    /// together or none does. Returns the paths written.</summary>
    public static IReadOnlyList<string> Export(ClipModel model, string outputDir, OnnxExportOptions options)
    {
        if (options.Opset < OnnxOpsets.Min || options.Opset > OnnxOpsets.Max)
            throw new OnnxExportException($"opset {options.Opset} is not supported: the exporter writes opsets {OnnxOpsets.Min} to {OnnxOpsets.Max} (minimum {OnnxOpsets.Min}; default {OnnxOpsets.Default})");
        if (!options.Image && !options.Text) throw new OnnxExportException("no tower to export");
        if (options.ContextLength < 3 || options.ContextLength > model.Config.TextMaxPositionEmbeddings)
            throw new OnnxExportException($"context length {options.ContextLength}: must be 3 to {model.Config.TextMaxPositionEmbeddings} (text_max_position_embeddings)");

        var towers = new List<(string File, Func<ClipConfig, StateDict, int, OnnxPrecision, GraphBuilder> Build, string Name)>();
        if (options.Image) towers.Add((TowerGraphs.ImageFile, TowerGraphs.Image, "image"));
        if (options.Text) towers.Add((TowerGraphs.TextFile, TowerGraphs.Text, "text"));
        string folder = Path.GetFullPath(outputDir);
        foreach (var (file, _, _) in towers)
        {
            foreach (string path in new[] { Path.Combine(folder, file), Path.Combine(folder, file + ".data") })
            {
                if (Directory.Exists(path)) throw new OnnxExportException($"{path} is a folder; the export needs that name for a file");
                if (File.Exists(path) && !options.Overwrite) throw new OnnxExportException($"{path} exists (use --force to replace it)");
            }
        }
        PrepareFolder(folder);

        var weights = new StateDict(model.state_dict());
        using var files = new AtomicFileSet();
        var written = new List<string>();
        foreach (var (file, build, name) in towers)
        {
            string modelPath = Path.Combine(folder, file), dataPath = modelPath + ".data";
            GraphBuilder g = build(model.Config, weights, options.Opset, options.Precision);
            // The data file is added first so that it is renamed into place before the model that names it.
            string dataTemp = files.Add(dataPath);
            string modelTemp = files.Add(modelPath);
            files.RemoveOnCommit(dataPath);
            bool external = OnnxFile.Write(g, Header(model, name, options), modelTemp, dataTemp, Path.GetFileName(dataPath), options.InlineLimit);
            if (external) written.Add(dataPath);
            written.Add(modelPath);
        }
        files.Commit();
        return written;
    }

    static void PrepareFolder(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            string probe = Path.Combine(folder, $".cnclip-write-test.{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OnnxExportException($"{folder}: cannot write the output folder: {e.Message}");
        }
    }

    static ModelProto Header(ClipModel model, string tower, OnnxExportOptions options)
    {
        var c = model.Config;
        float logitScale;
        using (var scale = model.LogitScale.detach().to(TorchSharp.torch.ScalarType.Float32)) logitScale = scale.item<float>();
        var proto = new ModelProto
        {
            IrVersion = OnnxOpsets.IrVersion(options.Opset),
            ProducerName = "cnclip",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            ModelVersion = 1,
            DocString = $"Chinese-CLIP {c.Name}, {tower} tower ({(options.Precision == OnnxPrecision.Fp16 ? "fp16" : "fp32")})",
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
        var meta = new Dictionary<string, string>
        {
            [OnnxMetadata.Arch] = c.Name,
            [OnnxMetadata.ArchJson] = OnnxMetadata.ToArchJson(c),
            [OnnxMetadata.Tower] = tower,
            [OnnxMetadata.EmbedDim] = c.EmbedDim.ToString(CultureInfo.InvariantCulture),
            [OnnxMetadata.ImageResolution] = c.ImageResolution.ToString(CultureInfo.InvariantCulture),
            [OnnxMetadata.ContextLength] = options.ContextLength.ToString(CultureInfo.InvariantCulture),
            [OnnxMetadata.LogitScale] = logitScale.ToString("R", CultureInfo.InvariantCulture),
            [OnnxMetadata.LogitScaleExp] = MathF.Exp(logitScale).ToString("R", CultureInfo.InvariantCulture),
            [OnnxMetadata.VocabSize] = c.VocabSize.ToString(CultureInfo.InvariantCulture),
            [OnnxMetadata.VocabSha256] = options.VocabSha256,
            [OnnxMetadata.PadId] = Model.Towers.BertModel.PadId.ToString(CultureInfo.InvariantCulture),
            [OnnxMetadata.CheckpointSha256] = options.CheckpointSha256,
            [OnnxMetadata.Checkpoint] = options.Checkpoint,
            [OnnxMetadata.Precision] = options.Precision == OnnxPrecision.Fp16 ? "fp16" : "fp32",
        };
        foreach (var (key, value) in meta) proto.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return proto;
    }
}
