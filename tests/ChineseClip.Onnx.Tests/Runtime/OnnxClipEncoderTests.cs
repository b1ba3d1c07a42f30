using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Runtime;

namespace ChineseClip.Onnx.Tests.Runtime;

/// <summary>The fixture exported once for the tests of this class.</summary>
public sealed class TinyExport : IDisposable
{
    public TinyExport()
    {
        using var model = TinyFixture.Load();
        LogitScale = model.LogitScale.item<float>();
        OnnxExporter.Export(model, Folder, new OnnxExportOptions { Checkpoint = "parity.pt", CheckpointSha256 = "00" });
        OnnxExporter.Export(model, ImageOnly, new OnnxExportOptions { Text = false });
    }

    public string Folder { get; } = Directory.CreateTempSubdirectory("cnclip-onnx-encoder").FullName;
    public string ImageOnly { get; } = Directory.CreateTempSubdirectory("cnclip-onnx-encoder-image").FullName;
    public float LogitScale { get; }

    public void Dispose()
    {
        Directory.Delete(Folder, true);
        Directory.Delete(ImageOnly, true);
    }
}

public class OnnxClipEncoderTests(TinyExport export) : IClassFixture<TinyExport>
{
    [Fact]
    public void An_export_folder_gives_the_official_features_for_images_and_for_unpadded_texts_of_mixed_lengths()
    {
        using var encoder = OnnxClipEncoder.FromExport(export.Folder, new OnnxEncoderOptions { Threads = 1 });
        Assert.Equal(64, encoder.Dimension);
        Assert.Equal(64, encoder.ImageResolution);
        Assert.Equal(52, encoder.ContextLength);
        Assert.Equal(export.LogitScale, encoder.LogitScale);
        Assert.Equal("parity.pt", encoder.Metadata[OnnxMetadata.Checkpoint]);

        float[] pixels = TinyFixture.Pixels(out int count);
        var images = TinyFixture.Rows(encoder.EncodeImages(pixels, count), count);
        var officialImages = TinyFixture.OfficialFeatures("ref_imgs.img_feat.jsonl", "image_id");
        long[] imageIds = TinyFixture.ImageIds();
        for (int i = 0; i < count; i++)
        {
            Assert.True(Vectors.Cosine(images[i], officialImages[imageIds[i]]) >= 0.99999, $"image {imageIds[i]}");
            Assert.Equal(1.0, Math.Sqrt(images[i].Sum(x => (double)x * x)), 5);
        }

        var ids = TinyFixture.Texts().Select(t => t.Select(x => (int)x).ToArray()).ToList();
        Assert.True(ids.Select(t => t.Length).Distinct().Count() > 3, "the fixture's texts have several lengths");
        var texts = TinyFixture.Rows(encoder.EncodeTexts(ids), ids.Count);
        var officialTexts = TinyFixture.OfficialFeatures("ref_texts.txt_feat.jsonl", "text_id");
        long[] textIds = TinyFixture.TextIds();
        for (int i = 0; i < ids.Count; i++)
            Assert.True(Vectors.Cosine(texts[i], officialTexts[textIds[i]]) >= 0.99999, $"text {textIds[i]}");
        Assert.Empty(encoder.EncodeTexts([]));
        Assert.Empty(encoder.EncodeImages([], 0));
    }

    [Fact]
    public void Texts_longer_than_the_context_or_outside_the_vocabulary_and_wrong_pixel_counts_are_refused()
    {
        using var encoder = OnnxClipEncoder.FromExport(export.Folder);
        var tooLong = Enumerable.Repeat(5, 53).ToArray();
        Assert.Contains("53 tokens", Assert.Throws<ArgumentException>(() => encoder.EncodeTexts([[101, 102], tooLong])).Message);
        Assert.Contains("token id 21128", Assert.Throws<ArgumentException>(() => encoder.EncodeTexts([[101, 21128, 102]])).Message);
        Assert.Throws<ArgumentException>(() => encoder.EncodeTexts([[]]));
        Assert.Throws<ArgumentException>(() => encoder.EncodeImages(new float[10], 1));
    }

    [Fact]
    public void A_folder_with_one_tower_encodes_with_it_and_says_the_other_is_missing()
    {
        using var encoder = OnnxClipEncoder.FromExport(export.ImageOnly);
        Assert.True(encoder.HasImageTower);
        Assert.False(encoder.HasTextTower);
        Assert.Equal(64, encoder.EncodeImages(new float[3 * 64 * 64], 1).Length);
        Assert.Contains("text.onnx", Assert.Throws<InvalidOperationException>(() => encoder.EncodeTexts([[101, 102]])).Message);
    }

    [Fact]
    public void Missing_corrupt_or_mismatched_exports_are_named()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-onnx-bad").FullName;
        Assert.Contains("not found", Assert.Throws<OnnxModelException>(() => OnnxClipEncoder.FromExport(Path.Combine(dir, "none"))).Message);
        Assert.Contains("neither image.onnx nor text.onnx", Assert.Throws<OnnxModelException>(() => OnnxClipEncoder.FromExport(dir)).Message);

        File.WriteAllText(Path.Combine(dir, "text.onnx"), "not a model");
        Assert.Contains(Path.Combine(dir, "text.onnx"), Assert.Throws<OnnxModelException>(() => OnnxClipEncoder.FromExport(dir)).Message);

        // The image tower of one export beside the text tower of another.
        File.Copy(Path.Combine(export.ImageOnly, "image.onnx"), Path.Combine(dir, "image.onnx"));
        File.Copy(Path.Combine(export.Folder, "text.onnx"), Path.Combine(dir, "text.onnx"), overwrite: true);
        Assert.Contains("different exports", Assert.Throws<OnnxModelException>(() => OnnxClipEncoder.FromExport(dir)).Message);
        Directory.Delete(dir, true);
    }
}
