using ChineseClip.Model;
using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Graph;
using Onnx;
using Xunit.Abstractions;

namespace ChineseClip.Onnx.Tests.Export;

public class OnnxExporterTests(ITestOutputHelper output)
{
    static string TempDir() => Directory.CreateTempSubdirectory("cnclip-onnx").FullName;

    [Theory]
    [InlineData(OnnxPrecision.Fp32, 0.99999)]
    [InlineData(OnnxPrecision.Fp16, 0.999)]
    public void Exported_towers_give_torchsharps_features_on_the_official_fixture_for_batches_of_1_7_and_64(OnnxPrecision precision, double bound)
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        OnnxExporter.Export(model, dir, new OnnxExportOptions { Precision = precision });
        OnnxChecker.AssertValid(Path.Combine(dir, "image.onnx"));
        OnnxChecker.AssertValid(Path.Combine(dir, "text.onnx"));

        float[] pixels = TinyFixture.Pixels(out int count);
        var reference = TinyFixture.TorchImages(model, pixels, count);
        int r = model.Config.ImageResolution, size = 3 * r * r;
        double lowestImage = 1, lowestText = 1;
        using (var session = TinyFixture.Session(Path.Combine(dir, "image.onnx")))
        {
            foreach (int batch in new[] { 1, 7, 64 })
            {
                // Image i of the batch is fixture image i mod 6.
                var input = new float[batch * size];
                for (int i = 0; i < batch; i++) Array.Copy(pixels, (i % count) * size, input, i * size, size);
                var features = TinyFixture.Rows(TinyFixture.RunImages(session, input, batch, r)["image_features"], batch);
                for (int i = 0; i < batch; i++)
                {
                    double cos = Vectors.Cosine(features[i], reference[i % count]);
                    Assert.True(cos >= bound, $"{precision} batch {batch} image {i}: cosine {cos}");
                    lowestImage = Math.Min(lowestImage, cos);
                }
            }
        }

        var texts = TinyFixture.Texts();
        var textReference = TinyFixture.TorchTexts(model, texts, 52);
        using (var session = TinyFixture.Session(Path.Combine(dir, "text.onnx")))
        {
            int longest = texts.Max(t => t.Length);
            foreach (int batch in new[] { 1, 7, 64 })
            {
                var ids = Enumerable.Range(0, batch).Select(i => texts[i % texts.Count]).ToList();
                // Padded to the longest text of the whole set, to the official 52, and to the table's 64 positions.
                foreach (int length in new[] { longest, 52, 64 })
                {
                    var features = TinyFixture.Rows(TinyFixture.RunTexts(session, ids, length)["text_features"], batch);
                    for (int i = 0; i < batch; i++)
                    {
                        double cos = Vectors.Cosine(features[i], textReference[i % texts.Count]);
                        Assert.True(cos >= bound, $"{precision} batch {batch} length {length} text {i}: cosine {cos}");
                        lowestText = Math.Min(lowestText, cos);
                    }
                }
            }
            // Each text alone, unpadded: its own length.
            for (int i = 0; i < texts.Count; i++)
            {
                var feature = TinyFixture.RunTexts(session, [texts[i]], texts[i].Length)["text_features"];
                Assert.True(Vectors.Cosine(feature, textReference[i]) >= bound, $"{precision} text {i} alone");
            }
        }
        output.WriteLine($"{precision}: lowest cosine to TorchSharp, images {lowestImage:F8}, texts {lowestText:F8}");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_graphs_have_a_dynamic_batch_and_token_length_and_the_documented_inputs_outputs_and_metadata()
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        var written = OnnxExporter.Export(model, dir, new OnnxExportOptions { CheckpointSha256 = "ab12", Checkpoint = "parity.pt", ContextLength = 24 });
        Assert.Equal([Path.Combine(dir, "image.onnx"), Path.Combine(dir, "text.onnx")], written);
        Assert.Equal(["image.onnx", "text.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());

        static string Dims(ValueInfoProto v) => string.Join(",", v.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString()));
        var image = OnnxChecker.Load(Path.Combine(dir, "image.onnx"));
        Assert.Equal("pixel_values", Assert.Single(image.Graph.Input).Name);
        Assert.Equal("batch,3,64,64", Dims(image.Graph.Input[0]));
        Assert.Equal(["image_features", "unnorm_image_features"], image.Graph.Output.Select(o => o.Name));
        Assert.All(image.Graph.Output, o => Assert.Equal("batch,64", Dims(o)));
        var text = OnnxChecker.Load(Path.Combine(dir, "text.onnx"));
        Assert.Equal("input_ids", Assert.Single(text.Graph.Input).Name);
        Assert.Equal((int)TensorProto.Types.DataType.Int64, text.Graph.Input[0].Type.TensorType.ElemType);
        Assert.Equal("batch,length", Dims(text.Graph.Input[0]));
        Assert.Equal(["text_features", "unnorm_text_features"], text.Graph.Output.Select(o => o.Name));

        Assert.Equal(17, Assert.Single(text.OpsetImport).Version);
        var meta = text.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(Path.GetFileNameWithoutExtension(TinyFixture.Path("arch.json")), meta["arch"]);
        Assert.Equal(model.Config, ClipConfig.FromJson(meta["arch"], meta["arch_json"]));
        Assert.Equal("text", meta["tower"]);
        Assert.Equal("24", meta["context_length"]);
        Assert.Equal("ab12", meta["checkpoint_sha256"]);
        Assert.Equal("parity.pt", meta["checkpoint"]);
        Assert.Equal(OnnxMetadata.OfficialVocabSha256, meta["vocab_sha256"]);
        Assert.Equal("fp32", meta["precision"]);
        float logitScale = float.Parse(meta["logit_scale"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(model.LogitScale.item<float>(), logitScale);
        Assert.Equal(MathF.Exp(logitScale), float.Parse(meta["logit_scale_exp"], System.Globalization.CultureInfo.InvariantCulture), 3);
        Assert.Equal("image", OnnxChecker.Load(Path.Combine(dir, "image.onnx")).MetadataProps.Single(p => p.Key == "tower").Value);
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData(14)]
    [InlineData(16)]
    [InlineData(18)]
    [InlineData(21)]
    public void Other_supported_opsets_give_valid_graphs_with_the_same_features(int opset)
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        OnnxExporter.Export(model, dir, new OnnxExportOptions { Opset = opset });
        var image = OnnxChecker.AssertValid(Path.Combine(dir, "image.onnx"));
        OnnxChecker.AssertValid(Path.Combine(dir, "text.onnx"));
        Assert.Equal(opset, image.OpsetImport.Single().Version);
        Assert.Equal(opset >= 17, image.Graph.Node.Any(n => n.OpType == "LayerNormalization"));

        float[] pixels = TinyFixture.Pixels(out int count);
        var reference = TinyFixture.TorchImages(model, pixels, count);
        using (var session = TinyFixture.Session(Path.Combine(dir, "image.onnx")))
        {
            var features = TinyFixture.Rows(TinyFixture.RunImages(session, pixels, count, 64)["image_features"], count);
            for (int i = 0; i < count; i++) Assert.True(Vectors.Cosine(features[i], reference[i]) >= 0.99999, $"opset {opset} image {i}");
        }
        var texts = TinyFixture.Texts();
        var textReference = TinyFixture.TorchTexts(model, texts, 52);
        using (var session = TinyFixture.Session(Path.Combine(dir, "text.onnx")))
        {
            var features = TinyFixture.Rows(TinyFixture.RunTexts(session, texts, 52)["text_features"], texts.Count);
            for (int i = 0; i < texts.Count; i++) Assert.True(Vectors.Cosine(features[i], textReference[i]) >= 0.99999, $"opset {opset} text {i}");
        }
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData(13)]
    [InlineData(22)]
    public void An_unsupported_opset_is_refused_naming_the_minimum_and_nothing_is_written(int opset)
    {
        using var model = TinyFixture.Load();
        string dir = Path.Combine(TempDir(), "out");
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(model, dir, new OnnxExportOptions { Opset = opset }));
        Assert.Contains($"opset {opset}", e.Message);
        Assert.Contains("minimum 14", e.Message);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void An_existing_file_is_kept_unless_overwrite_is_asked_and_then_both_towers_are_replaced()
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        File.WriteAllText(Path.Combine(dir, "text.onnx"), "old");
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(model, dir, new OnnxExportOptions()));
        Assert.Contains("text.onnx exists", e.Message);
        Assert.Equal("old", File.ReadAllText(Path.Combine(dir, "text.onnx")));
        Assert.False(File.Exists(Path.Combine(dir, "image.onnx")));

        OnnxExporter.Export(model, dir, new OnnxExportOptions { Overwrite = true });
        OnnxChecker.AssertValid(Path.Combine(dir, "text.onnx"));
        OnnxChecker.AssertValid(Path.Combine(dir, "image.onnx"));
        Assert.Equal(["image.onnx", "text.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_folder_in_the_place_of_a_graph_file_is_refused_before_anything_is_written()
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "text.onnx"));
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(model, dir, new OnnxExportOptions { Overwrite = true }));
        Assert.Contains("text.onnx is a folder", e.Message);
        Assert.Empty(Directory.GetFiles(dir));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Only_the_chosen_tower_is_written()
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        OnnxExporter.Export(model, dir, new OnnxExportOptions { Image = false });
        Assert.Equal(["text.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_folder_that_cannot_be_created_is_named_in_the_error()
    {
        using var model = TinyFixture.Load();
        string dir = TempDir();
        string blocker = Path.Combine(dir, "a-file");
        File.WriteAllText(blocker, "");
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(model, Path.Combine(blocker, "out"), new OnnxExportOptions()));
        Assert.Contains(Path.Combine(blocker, "out"), e.Message);
        Assert.Equal(["a-file"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Weights_over_the_inline_limit_go_to_one_data_file_beside_the_model_which_runs_the_same()
    {
        using var model = TinyFixture.Load();
        string dir = TempDir(), inline = Path.Combine(dir, "inline"), external = Path.Combine(dir, "external");
        OnnxExporter.Export(model, inline, new OnnxExportOptions { Text = false });
        var written = OnnxExporter.Export(model, external, new OnnxExportOptions { Text = false, InlineLimit = 1 << 20 });
        Assert.Equal([Path.Combine(external, "image.onnx.data"), Path.Combine(external, "image.onnx")], written);
        var proto = OnnxChecker.AssertValid(Path.Combine(external, "image.onnx"));
        var outside = proto.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        Assert.NotEmpty(outside);
        Assert.All(outside, t => Assert.Equal("image.onnx.data", t.ExternalData.Single(e => e.Key == "location").Value));
        Assert.All(outside, t => Assert.Equal(0, long.Parse(t.ExternalData.Single(e => e.Key == "offset").Value) % 4096));
        Assert.True(new FileInfo(Path.Combine(external, "image.onnx")).Length < 1 << 20);

        float[] pixels = TinyFixture.Pixels(out int count);
        using var a = TinyFixture.Session(Path.Combine(inline, "image.onnx"));
        using var b = TinyFixture.Session(Path.Combine(external, "image.onnx"));
        Assert.Equal(TinyFixture.RunImages(a, pixels, count, 64)["image_features"], TinyFixture.RunImages(b, pixels, count, 64)["image_features"]);

        // Exported again inline with overwrite, the stale data file goes.
        OnnxExporter.Export(model, external, new OnnxExportOptions { Text = false, Overwrite = true });
        Assert.Equal(["image.onnx"], Directory.GetFiles(external).Select(Path.GetFileName));
        Directory.Delete(dir, true);
    }
}
