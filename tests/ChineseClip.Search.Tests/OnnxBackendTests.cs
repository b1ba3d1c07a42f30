using ChineseClip.Model;

namespace ChineseClip.Search.Tests;

/// <summary>The onnx backend: the checkpoint exported once into a cache, then ONNX Runtime gives the embeddings
/// TorchSharp gives.</summary>
public class OnnxBackendTests
{
    static byte[][] Images() => Data.Formats.ImageTsv.Read(Fixtures.Tiny("test_imgs.tsv"), _ => { }).Select(i => i.Bytes).ToArray();

    static readonly string[] Texts = ["一只狗", "城市的夜景，灯火通明", "红色的鞋", "a"];

    [Fact]
    public void Texts_and_images_embed_as_with_torch_and_the_export_is_made_once()
    {
        string cache = Fixtures.TempDir("onnx-cache");
        try
        {
            var settings = new EncoderSettings(Cache: cache);
            using var torch = ClipEmbedder.Load(Fixtures.TinyModel());
            float[] torchTexts = torch.EmbedTexts(Texts), torchImages = torch.EmbedImages(Images());
            string made;
            using (var onnx = ClipEmbedder.Load(Fixtures.TinyModel(), ClipEncoders.Onnx, settings: settings))
            {
                AssertClose(torchTexts, onnx.EmbedTexts(Texts));
                AssertClose(torchImages, onnx.EmbedImages(Images()));
                made = Assert.Single(Directory.GetDirectories(cache));
                Assert.True(File.Exists(Path.Combine(made, "image.onnx")) && File.Exists(Path.Combine(made, "text.onnx")));
            }
            var written = File.GetLastWriteTimeUtc(Path.Combine(made, "text.onnx"));
            Directory.CreateDirectory(Path.Combine(cache, ".tmp-left-by-a-killed-process")); // never taken for an export
            using (var again = ClipEmbedder.Load(Fixtures.TinyModel(), ClipEncoders.Onnx, settings: settings))
                AssertClose(torchTexts, again.EmbedTexts(Texts));
            Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(made, "text.onnx")));
            Assert.Equal([made], Directory.GetDirectories(cache).Where(d => !Path.GetFileName(d).StartsWith('.')));
        }
        finally { Directory.Delete(cache, true); }
    }

    [Fact]
    public void An_export_of_another_vocab_or_architecture_is_refused_by_name()
    {
        string cache = Fixtures.TempDir("onnx-cache");
        try
        {
            string folder = OnnxExports.Ensure(cache, Fixtures.TinyModel(), Architectures.Resolve(Fixtures.Arch));
            string otherVocab = Path.Combine(cache, "vocab.txt");
            File.WriteAllLines(otherVocab, File.ReadAllLines(Fixtures.Vocab).Reverse());
            var vocab = Assert.Throws<InvalidDataException>(() => OnnxExports.Open(folder, null, otherVocab));
            Assert.Contains(otherVocab, vocab.Message);
            var arch = Assert.Throws<InvalidDataException>(() =>
                OnnxExports.Open(folder, Architectures.Resolve(Fixtures.Arch) with { EmbedDim = 32 }, Fixtures.Vocab));
            Assert.Contains(folder, arch.Message);
        }
        finally { Directory.Delete(cache, true); }
    }

    static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-5, $"largest difference {worst:E2}");
    }
}
