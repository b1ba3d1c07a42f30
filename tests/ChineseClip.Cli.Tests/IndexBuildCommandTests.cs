using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class IndexBuildCommandTests
{
    internal static string[] BuildArgs(string images, string output, params string[] extra) =>
    [
        "index", "build", "--checkpoint", ExtractFeaturesCommandTests.Fixture("parity.pt"), "--arch", ExtractFeaturesCommandTests.Fixture("arch.json"),
        "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--images", images, "--output", output, "--threads", "2", .. extra,
    ];

    [Fact]
    public void The_official_tsv_becomes_a_collection_and_a_rerun_adds_nothing()
    {
        string data = ExtractFeaturesCommandTests.DataDir(), output = Path.Combine(data, "collection");
        var r = CliRunner.Run(BuildArgs(Path.Combine(data, "test_imgs.tsv"), output, "--batch-size", "4"));
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("6 images added", r.Error);
        Assert.Contains("12 captions", r.Error);
        Assert.DoesNotContain("6/6", r.Error); // the progress bar is drawn only when stderr is a terminal (CliProgress)
        using (var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "collection.json"))))
        {
            Assert.Equal(6, manifest.RootElement.GetProperty("count").GetInt32());
            Assert.Equal("collection", manifest.RootElement.GetProperty("name").GetString());
            Assert.Equal(64, manifest.RootElement.GetProperty("model").GetProperty("sha256").GetString()!.Length);
        }

        var again = CliRunner.Run(BuildArgs(Path.Combine(data, "test_imgs.tsv"), output));
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.Contains("0 images added, 6 already there", again.Error);
        Directory.Delete(data, true);
    }

    [Fact]
    public void An_unreadable_image_in_a_folder_is_named_with_its_reason_and_the_rest_is_indexed()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-index").FullName, images = Path.Combine(root, "images");
        Directory.CreateDirectory(images);
        var fixture = ChineseClip.Data.Formats.ImageTsv.Read(ExtractFeaturesCommandTests.Fixture("test_imgs.tsv"), _ => { }).Take(2).ToList();
        File.WriteAllBytes(Path.Combine(images, "a.png"), fixture[0].Bytes);
        File.WriteAllText(Path.Combine(images, "a.txt"), "一条白色的小狗");
        File.WriteAllBytes(Path.Combine(images, "b.png"), fixture[1].Bytes);
        File.WriteAllText(Path.Combine(images, "c.jpg"), "not an image");

        var r = CliRunner.Run(BuildArgs(images, Path.Combine(root, "c")));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("c.jpg", r.Error);
        Assert.Contains("2 images added", r.Error);
        Assert.Contains("1 rejected", r.Error);
        Directory.Delete(root, true);
    }

    [Fact]
    public void The_onnx_backend_builds_the_collection_the_torch_backend_builds()
    {
        string data = ExtractFeaturesCommandTests.DataDir(), tsv = Path.Combine(data, "test_imgs.tsv");
        string viaTorch = Path.Combine(data, "torch"), viaOnnx = Path.Combine(data, "onnx"), export = Path.Combine(data, "export");
        Assert.Equal(0, CliRunner.Run(BuildArgs(tsv, viaTorch, "--backend", "torch")).ExitCode);
        var exported = CliRunner.Run("export-onnx", "--checkpoint", ExtractFeaturesCommandTests.Fixture("parity.pt"), "--arch",
            ExtractFeaturesCommandTests.Fixture("arch.json"), "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--output", export);
        Assert.True(exported.ExitCode == 0, exported.Error);
        var r = CliRunner.Run(BuildArgs(tsv, viaOnnx, "--backend", "onnx", "--onnx", export));
        Assert.True(r.ExitCode == 0, r.Error);

        foreach (string[] query in new[] { new[] { "--text", "一只狗" }, ["--text", "城市"] })
        {
            foreach (string target in new[] { "images", "texts" })
            {
                JsonElement[] Results(string collection)
                {
                    var answer = CliRunner.Run(["search", "--index", collection, .. query, "--target", target, "--k", "6", "--exact", "--json"]);
                    Assert.True(answer.ExitCode == 0, answer.Error);
                    return JsonDocument.Parse(answer.Out).RootElement.GetProperty("results").EnumerateArray().ToArray();
                }
                var expected = Results(viaTorch);
                var actual = Results(viaOnnx);
                Assert.Equal(expected.Select(e => e.GetProperty("id").GetInt64()), actual.Select(e => e.GetProperty("id").GetInt64()));
                for (int i = 0; i < expected.Length; i++)
                    Assert.Equal(expected[i].GetProperty("score").GetDouble(), actual[i].GetProperty("score").GetDouble(), 1e-4);
            }
        }
        Directory.Delete(data, true);
    }

    [Fact]
    public void An_onnx_export_of_another_vocab_is_one_line_naming_the_vocab()
    {
        string data = ExtractFeaturesCommandTests.DataDir(), export = Path.Combine(data, "export"), vocab = Path.Combine(data, "other-vocab.txt");
        File.WriteAllLines(vocab, File.ReadAllLines(SharedFiles.Path("reference", "vocab.txt")).Reverse());
        var exported = CliRunner.Run("export-onnx", "--checkpoint", ExtractFeaturesCommandTests.Fixture("parity.pt"), "--arch",
            ExtractFeaturesCommandTests.Fixture("arch.json"), "--vocab", vocab, "--output", export);
        Assert.True(exported.ExitCode == 0, exported.Error);
        var r = CliRunner.Run(BuildArgs(Path.Combine(data, "test_imgs.tsv"), Path.Combine(data, "c"), "--backend", "onnx", "--onnx", export));
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("cnclip: error: ", r.Error);
        Assert.Contains("vocab_sha256", r.Error);
        Assert.Single(r.Error.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(data, "c", "collection.json")));
        Directory.Delete(data, true);
    }

    [Fact]
    public void A_missing_input_is_one_line_and_exit_code_2()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-index").FullName;
        var r = CliRunner.Run(BuildArgs(Path.Combine(root, "nothing-here"), Path.Combine(root, "c")));
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("cnclip: error: ", r.Error);
        Assert.Contains("nothing-here", r.Error);
        Assert.False(Directory.Exists(Path.Combine(root, "c", "v1")));
        Directory.Delete(root, true);
    }
}
