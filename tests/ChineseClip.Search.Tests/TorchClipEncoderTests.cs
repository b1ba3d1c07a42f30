using ChineseClip.Data.Formats;
using ChineseClip.Model;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using static TorchSharp.torch;

namespace ChineseClip.Search.Tests;

public class TorchClipEncoderTests
{
    [Fact]
    public void Text_batches_cut_to_the_longest_text_give_the_features_of_the_52_token_forward()
    {
        using var model = Fixtures.TinyClipModel();
        model.eval();
        var tokenizer = ClipTokenizer.FromVocabFile(Fixtures.Vocab);
        var texts = TextJsonl.Read(Fixtures.Tiny("test_texts.jsonl"), e => throw new Exception(e.ToString())).Select(t => t.Text).ToList();
        texts.Add("狗");
        using var encoder = new TorchClipEncoder(model, 52, ownsModel: false);
        var embedder = new ClipEmbedder(encoder, tokenizer, Fixtures.TinyModel());

        float[] cut = embedder.EmbedTexts(texts);
        float[] padded;
        using (no_grad())
        {
            var ids = tokenizer.TokenizeBatch(texts.Select(TextPreprocess.ForLoader).ToList(), 52);
            padded = ClipModel.Normalize(model.EncodeText(tensor(ids))).contiguous().data<float>().ToArray();
        }
        Assert.Equal(padded.Length, cut.Length);
        double worst = padded.Zip(cut, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-6, $"largest difference {worst}");
        Assert.True(embedder.TokenIds("狗").Length < 52);
    }

    [Fact]
    public void Image_features_equal_the_models_normalised_image_embedding()
    {
        using var model = Fixtures.TinyClipModel();
        model.eval();
        using var encoder = new TorchClipEncoder(model, 52, ownsModel: false);
        var transform = new ImageTransform(encoder.ImageResolution);
        var images = ImageTsv.Read(Fixtures.Tiny("test_imgs.tsv"), e => throw new Exception(e.ToString())).Select(r => r.Bytes).ToList();

        float[] ours = encoder.EncodeImages(images.SelectMany(b => transform.ToPixels(b)).ToArray(), images.Count);
        float[] reference;
        using (no_grad()) reference = ClipModel.Normalize(model.EncodeImage(transform.ToTensor(images))).contiguous().data<float>().ToArray();
        Assert.Equal(reference, ours);
        Assert.Equal(images.Count * encoder.Dimension, ours.Length);
    }

    [Fact]
    public void A_text_longer_than_the_context_is_refused_by_name()
    {
        using var encoder = TorchClipEncoder.Load(Architectures.Resolve(Fixtures.Arch), Fixtures.Checkpoint, 8);
        var e = Assert.Throws<ArgumentException>(() => encoder.EncodeTexts([new int[9]]));
        Assert.Contains("9 tokens", e.Message);
    }

    [Fact]
    public void An_unknown_backend_is_named_with_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => ClipEncoders.Create("tensorrt", Fixtures.TinyModel(), Architectures.Resolve(Fixtures.Arch)));
        Assert.Contains("tensorrt", e.Message);
        Assert.Contains("torch", e.Message);
        Assert.Contains("onnx", e.Message);
    }
}
