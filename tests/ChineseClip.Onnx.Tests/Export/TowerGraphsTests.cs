using ChineseClip.Model.Towers;
using ChineseClip.Model;
using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Graph;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ChineseClip.Onnx.Tests.Export;

/// <summary>Every official architecture exports, passes the checker's rules and runs in ONNX Runtime with the features
/// TorchSharp computes from the same random weights. To keep CI fast each is built with one block per stage and a
/// small vocabulary; widths, heads, patch sizes and resolutions are the architecture's own.</summary>
public class TowerGraphsTests(ITestOutputHelper output)
{
    public static TheoryData<string> Official() => [.. Architectures.Official];

    internal static ClipConfig Reduced(string name)
    {
        ClipConfig c = Architectures.Resolve(name);
        return c with
        {
            VisionLayers = c.IsResNet ? [1, 1, 1, 1] : [1],
            TextNumHiddenLayers = 1,
            VocabSize = 512,
        };
    }

    [Theory]
    [MemberData(nameof(Official))]
    public void Each_official_architecture_exports_valid_graphs_that_run_and_match_torchsharp(string name)
    {
        ClipConfig config = Reduced(name);
        manual_seed(7);
        using var model = new ClipModel(config);
        model.eval();
        // Random BatchNorm statistics, so that the folding into the convolutions is exercised (fresh ones are 0 and 1).
        using (no_grad())
        {
            using Scalar tenth = 0.1, half = 0.5;
            foreach (var (key, t) in model.state_dict())
            {
                if (key.EndsWith("running_mean")) t.copy_(randn_like(t) * tenth);
                else if (key.EndsWith("running_var")) t.copy_(rand_like(t).add(half, Sum.One));
                else if (key.Contains(".bn") && key.EndsWith(".weight")) t.copy_(rand_like(t).add(half, Sum.One));
            }
        }
        string dir = Directory.CreateTempSubdirectory("cnclip-onnx-arch").FullName;
        OnnxExporter.Export(model, dir, new OnnxExportOptions());
        OnnxChecker.AssertValid(Path.Combine(dir, "image.onnx"));
        OnnxChecker.AssertValid(Path.Combine(dir, "text.onnx"));

        int r = config.ImageResolution, batch = 2;
        manual_seed(8);
        float[] pixels;
        using (var p = randn(batch, 3, r, r)) pixels = p.data<float>().ToArray();
        var reference = TinyFixture.TorchImages(model, pixels, batch);
        using (var session = TinyFixture.Session(Path.Combine(dir, "image.onnx")))
        {
            var outputs = TinyFixture.RunImages(session, pixels, batch, r);
            var features = TinyFixture.Rows(outputs["image_features"], batch);
            Assert.Equal(batch * config.EmbedDim, outputs["unnorm_image_features"].Length);
            for (int i = 0; i < batch; i++)
            {
                double cos = Vectors.Cosine(features[i], reference[i]);
                output.WriteLine($"{name} image {i}: cosine {cos:F8}");
                Assert.True(cos >= 0.99999, $"{name} image {i}: cosine {cos}");
            }
        }

        var ids = new List<long[]> { new long[] { 101, 7, 300, 102 }, new long[] { 101, 5, 6, 7, 8, 9, 10, 102 } };
        var textReference = TinyFixture.TorchTexts(model, ids, 8);
        using (var session = TinyFixture.Session(Path.Combine(dir, "text.onnx")))
        {
            var features = TinyFixture.Rows(TinyFixture.RunTexts(session, ids, 8)["text_features"], 2);
            for (int i = 0; i < 2; i++)
            {
                double cos = Vectors.Cosine(features[i], textReference[i]);
                output.WriteLine($"{name} text {i}: cosine {cos:F8}");
                Assert.True(cos >= 0.99999, $"{name} text {i}: cosine {cos}");
            }
        }
        Directory.Delete(dir, true);
    }
}
