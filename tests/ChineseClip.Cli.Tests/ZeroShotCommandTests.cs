using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model;
using ChineseClip.Model.Text;
using ChineseClip.Model.Towers;
using ChineseClip.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Tests;

public class ZeroShotCommandTests
{
    static string Fixture(string name) => SharedFiles.Path("fixtures", "official-tiny", name);

    [Fact]
    public void Zero_shot_classifies_every_readable_image_and_names_the_unreadable_ones()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-zeroshot").FullName;
        var images = ImageTsv.Read(Fixture("test_imgs.tsv"), _ => { }).ToList();
        string[] classes = ["小狗", "城市", "运动鞋"];
        for (int i = 0; i < images.Count; i++)
        {
            string folder = Path.Combine(dir, "data", classes[i % 3]);
            Directory.CreateDirectory(folder);
            File.WriteAllBytes(Path.Combine(folder, $"{images[i].ImageId}.img"), images[i].Bytes);
        }
        File.WriteAllBytes(Path.Combine(dir, "data", "城市", "broken.jpg"), [0xFF, 0xD8, 0xFF, 0x00]);
        string predictions = Path.Combine(dir, "pred.jsonl");
        var r = CliRunner.Run("zero-shot", "--checkpoint", Fixture("parity.pt"), "--arch", Fixture("arch.json"),
            "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", Path.Combine(dir, "data"), "--output", predictions);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("broken.jpg", r.Error);
        var json = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal((6, 3, 1), (json.GetProperty("images").GetInt32(), json.GetProperty("classes").GetInt32(), json.GetProperty("rejected").GetInt32()));
        Assert.Equal(100.0, json.GetProperty("top5").GetDouble()); // three classes: the true one is always within the top 5
        var lines = File.ReadAllLines(predictions).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(6, lines.Count);
        double top1 = 100.0 * lines.Count(l => l.GetProperty("label").GetString() == l.GetProperty("predicted").GetString()) / 6;
        Assert.Equal(top1, json.GetProperty("top1").GetDouble(), 9);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_templates_file_line_without_a_placeholder_is_named_by_file_and_line()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-zeroshot").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "data", "a"));
        Directory.CreateDirectory(Path.Combine(dir, "data", "b"));
        string templates = Path.Combine(dir, "templates.txt");
        File.WriteAllLines(templates, ["一张{}的照片", "一张照片"]);
        var r = CliRunner.Run("zero-shot", "--checkpoint", Fixture("parity.pt"), "--arch", Fixture("arch.json"),
            "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", Path.Combine(dir, "data"), "--templates", templates);
        Assert.NotEqual(ExitCodes.Success, r.ExitCode);
        Assert.Equal($"cnclip: error: {templates}:2: a template needs {{}} where the class name goes", r.Error.Trim());
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_class_vector_is_the_renormalised_mean_of_its_normalised_prompt_embeddings()
    {
        using var model = ClipModel.Load(Architectures.Resolve(Fixture("arch.json")), Fixture("parity.pt"));
        model.eval();
        var tokenizer = ClipTokenizer.FromVocabFile(SharedFiles.Path("reference", "vocab.txt"));
        string[] templates = ["一张{}的照片。", "{}"];
        using var vectors = ZeroShot.ClassVectors(model, tokenizer, ["猫"], templates, 52);
        using var _ = no_grad();
        // One prompt at a time, by hand.
        var sum = zeros(64);
        foreach (string t in templates)
            sum = Sum.Of(sum, ClipModel.Normalize(model.EncodeText(tensor(tokenizer.Tokenize(t.Replace("{}", "猫")), [1, 52])))[0]);
        using Scalar count = templates.Length;
        using var expected = ClipModel.Normalize(sum / count);
        Assert.True(expected.allclose(vectors[0], rtol: 0, atol: 1e-6));
    }
}
