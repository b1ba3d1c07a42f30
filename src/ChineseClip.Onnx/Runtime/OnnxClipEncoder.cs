// IClipEncoder over the graphs `cnclip export-onnx` writes, run by ONNX Runtime. CPU by default; a GPU provider (CUDA,
// TensorRT) is added through OnnxEncoderOptions.ConfigureSession with the matching ONNX Runtime GPU package.
using System.Globalization;
using System.Runtime.ExceptionServices;
using ChineseClip.Model;
using ChineseClip.Model.Inference;
using ChineseClip.Onnx.Export;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ChineseClip.Onnx.Runtime;

/// <summary>An export folder that cannot be used (missing towers, unreadable graphs, towers of different exports).</summary>
public sealed class OnnxModelException(string message, Exception? inner = null) : Exception(message, inner);

public sealed record OnnxEncoderOptions
{
    /// <summary>Intra-op threads of each session; 0 lets ONNX Runtime choose (one per core).</summary>
    public int Threads { get; init; }

    /// <summary>Called on the session options before each session is created, e.g. to append the CUDA or TensorRT
    /// execution provider (o => o.AppendExecutionProvider_CUDA(0)).</summary>
    public Action<SessionOptions>? ConfigureSession { get; init; }
}

public sealed class OnnxClipEncoder : IClipEncoder
{
    readonly InferenceSession? _image;
    readonly InferenceSession? _text;
    readonly string _folder;

    OnnxClipEncoder(string folder, InferenceSession? image, InferenceSession? text, IReadOnlyDictionary<string, string> metadata)
    {
        _folder = folder;
        _image = image;
        _text = text;
        Metadata = metadata;
        string Get(string key) => metadata.TryGetValue(key, out string? v) ? v
            : throw new OnnxModelException($"{folder}: the graphs' metadata has no '{key}' (not written by cnclip export-onnx?)");
        Config = ClipConfig.FromJson(Get(OnnxMetadata.Arch), Get(OnnxMetadata.ArchJson), $"{folder} metadata");
        ContextLength = int.Parse(Get(OnnxMetadata.ContextLength), CultureInfo.InvariantCulture);
        LogitScale = float.Parse(Get(OnnxMetadata.LogitScale), CultureInfo.InvariantCulture);
    }

    /// <summary>Opens the image.onnx and/or text.onnx of an export folder (at least one must be there).</summary>
    public static OnnxClipEncoder FromExport(string folder, OnnxEncoderOptions? options = null)
    {
        options ??= new OnnxEncoderOptions();
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder)) throw new OnnxModelException($"{folder}: ONNX export folder not found");
        string imagePath = Path.Combine(folder, TowerGraphs.ImageFile), textPath = Path.Combine(folder, TowerGraphs.TextFile);
        if (!File.Exists(imagePath) && !File.Exists(textPath))
            throw new OnnxModelException($"{folder}: neither {TowerGraphs.ImageFile} nor {TowerGraphs.TextFile} is there (write them with cnclip export-onnx)");
        // The two sessions are created side by side: each spends seconds optimising its graph on one core (3 s per
        // ViT-B-16 tower here), so a process that opens both starts about that much sooner.
        var opening = new[] { imagePath, textPath }
            .Select(path => File.Exists(path) ? Task.Run(() => (InferenceSession?)Open(path, options)) : Task.FromResult<InferenceSession?>(null))
            .ToArray();
        try
        {
            Task.WaitAll(opening);
        }
        catch (AggregateException e)
        {
            foreach (var task in opening)
                if (task.IsCompletedSuccessfully) task.Result?.Dispose();
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
        InferenceSession? image = opening[0].Result, text = opening[1].Result;
        try
        {
            var imageMeta = image?.ModelMetadata.CustomMetadataMap;
            var textMeta = text?.ModelMetadata.CustomMetadataMap;
            if (imageMeta is not null && textMeta is not null)
            {
                foreach (string key in new[] { OnnxMetadata.ArchJson, OnnxMetadata.CheckpointSha256, OnnxMetadata.LogitScale })
                    if (imageMeta.GetValueOrDefault(key) != textMeta.GetValueOrDefault(key))
                        throw new OnnxModelException($"{folder}: {TowerGraphs.ImageFile} and {TowerGraphs.TextFile} come from different exports ('{key}' differs)");
            }
            return new OnnxClipEncoder(folder, image, text, (imageMeta ?? textMeta)!);
        }
        catch
        {
            image?.Dispose();
            text?.Dispose();
            throw;
        }
    }

    static InferenceSession Open(string path, OnnxEncoderOptions options)
    {
        using var session = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = options.Threads,
            InterOpNumThreads = 1,
        };
        options.ConfigureSession?.Invoke(session);
        try
        {
            return new InferenceSession(path, session);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxModelException($"{path}: ONNX Runtime cannot load it: {e.Message}", e);
        }
    }

    /// <summary>The architecture the graphs were exported from.</summary>
    public ClipConfig Config { get; }

    /// <summary>The model metadata (OnnxMetadata keys).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The logit_scale parameter (similarities are multiplied by exp(LogitScale)).</summary>
    public float LogitScale { get; }

    public bool HasImageTower => _image is not null;
    public bool HasTextTower => _text is not null;

    public int Dimension => Config.EmbedDim;
    public int ImageResolution => Config.ImageResolution;
    public int ContextLength { get; }

    public float[] EncodeImages(ReadOnlySpan<float> pixels, int count)
    {
        var session = _image ?? throw new InvalidOperationException($"{_folder} has no {TowerGraphs.ImageFile}");
        int r = ImageResolution, size = 3 * r * r;
        if (count < 0 || pixels.Length != (long)count * size)
            throw new ArgumentException($"{pixels.Length} pixel values for {count} images of 3 x {r} x {r}", nameof(pixels));
        if (count == 0) return [];
        using var input = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [count, 3, r, r]);
        pixels.CopyTo(input.GetTensorMutableDataAsSpan<float>());
        return Run(session, TowerGraphs.ImageInput, input, TowerGraphs.ImageFeatures);
    }

    public float[] EncodeTexts(IReadOnlyList<int[]> ids)
    {
        var session = _text ?? throw new InvalidOperationException($"{_folder} has no {TowerGraphs.TextFile}");
        if (ids.Count == 0) return [];
        int length = 0;
        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i].Length == 0 || ids[i].Length > ContextLength)
                throw new ArgumentException($"text {i}: {ids[i].Length} tokens, expected 1 to {ContextLength} (context_length)", nameof(ids));
            foreach (int id in ids[i])
                if (id < 0 || id >= Config.VocabSize) throw new ArgumentException($"text {i}: token id {id} is outside the vocabulary (0 to {Config.VocabSize - 1})", nameof(ids));
            length = Math.Max(length, ids[i].Length);
        }
        // Padded only to the longest text: [PAD] is masked inside the graph.
        using var input = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Int64, [ids.Count, length]);
        Span<long> data = input.GetTensorMutableDataAsSpan<long>();
        data.Clear();
        for (int i = 0; i < ids.Count; i++)
            for (int j = 0; j < ids[i].Length; j++) data[i * length + j] = ids[i][j];
        return Run(session, TowerGraphs.TextInput, input, TowerGraphs.TextFeatures);
    }

    static float[] Run(InferenceSession session, string inputName, OrtValue input, string outputName)
    {
        using var options = new RunOptions();
        using var outputs = session.Run(options, [inputName], [input], [outputName]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    public void Dispose()
    {
        _image?.Dispose();
        _text?.Dispose();
    }
}
