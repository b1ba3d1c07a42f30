using ChineseClip.Data.Formats;

namespace ChineseClip.Cli.Tests;

public class ExtractFeaturesCommandTests
{
    internal static string Fixture(string name) => SharedFiles.Path("fixtures", "official-tiny", name);

    internal static string DataDir(Action<string>? edit = null)
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-extract").FullName;
        File.Copy(Fixture("test_imgs.tsv"), Path.Combine(dir, "test_imgs.tsv"));
        File.Copy(Fixture("test_texts.jsonl"), Path.Combine(dir, "test_texts.jsonl"));
        edit?.Invoke(dir);
        return dir;
    }

    static CliRunner.Result Extract(string dataDir, string outputDir, params string[] extra) => CliRunner.Run(
    [
        "extract-features", "--checkpoint", Fixture("parity.pt"), "--arch", Fixture("arch.json"),
        "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", dataDir, "--split", "test", "--output-dir", outputDir, .. extra,
    ]);

    /// <summary>The features extract-features wrote into <paramref name="output"/> for the official-tiny fixture equal the official ones.</summary>
    internal static void AssertMatchOfficialFeatures(string output)
    {
        var images = FeatureJsonl.Read(Path.Combine(output, "test_imgs.img_feat.jsonl"), "image_id");
        var officialImages = FeatureJsonl.Read(Fixture("ref_imgs.img_feat.jsonl"), "image_id");
        Assert.Equal(officialImages.Keys, images.Keys);
        foreach (var (id, feature) in officialImages)
        {
            // PNGs decode and resize exactly as PIL does; JPEG decoders differ slightly (libjpeg-turbo vs ImageSharp).
            double bound = id is 1001 or 1006 ? 0.999 : 0.99999;
            Assert.True(Vectors.Cosine(images[id], feature) >= bound, $"image {id}: cosine {Vectors.Cosine(images[id], feature)}");
            Assert.Equal(1.0, Math.Sqrt(images[id].Sum(x => (double)x * x)), 5);
        }

        var texts = FeatureJsonl.Read(Path.Combine(output, "test_texts.txt_feat.jsonl"), "text_id");
        var officialTexts = FeatureJsonl.Read(Fixture("ref_texts.txt_feat.jsonl"), "text_id");
        Assert.Equal(officialTexts.Keys, texts.Keys);
        foreach (var (id, feature) in officialTexts)
            Assert.True(Vectors.Cosine(texts[id], feature) >= 0.99999, $"text {id}: cosine {Vectors.Cosine(texts[id], feature)}");
    }

    [Fact]
    public void Features_from_raw_images_and_texts_match_the_official_ones()
    {
        string data = DataDir(), output = Path.Combine(data, "out");
        var r = Extract(data, output, "--batch-size", "4");
        Assert.True(r.ExitCode == 0, r.Error);

        AssertMatchOfficialFeatures(output);
        Directory.Delete(data, true);
    }

    [Fact]
    public void A_data_dir_with_only_the_official_lmdb_gives_the_same_features()
    {
        string data = DataDir(), fromTsv = Path.Combine(data, "tsv"), fromLmdb = Path.Combine(data, "lmdb-out");
        Assert.Equal(0, Extract(data, fromTsv).ExitCode);
        Assert.Equal(0, CliRunner.Run("build-lmdb", "--data-dir", data, "--splits", "test").ExitCode);
        File.Delete(Path.Combine(data, "test_imgs.tsv"));
        File.Delete(Path.Combine(data, "test_texts.jsonl"));
        var r = Extract(data, fromLmdb);
        Assert.True(r.ExitCode == 0, r.Error);
        foreach (var (file, key) in new[] { ("test_imgs.img_feat.jsonl", "image_id"), ("test_texts.txt_feat.jsonl", "text_id") })
        {
            var expected = FeatureJsonl.Read(Path.Combine(fromTsv, file), key);
            var actual = FeatureJsonl.Read(Path.Combine(fromLmdb, file), key);
            Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
            foreach (var (id, feature) in expected) Assert.Equal(feature, actual[id]);
        }
        Directory.Delete(data, true);
    }

    [Fact]
    public void Bad_records_are_named_and_skipped_and_the_rest_is_written()
    {
        string data = DataDir(dir =>
        {
            File.AppendAllText(Path.Combine(dir, "test_imgs.tsv"), "2001\t%%%\n2002\tAAAAAAAA\n");
            File.AppendAllText(Path.Combine(dir, "test_texts.jsonl"), "{\"text_id\": \"x\"}\n");
        });
        string output = Path.Combine(data, "out");
        var r = Extract(data, output);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        string imgs = Path.Combine(data, "test_imgs.tsv");
        Assert.Contains($"cnclip: error: {imgs}:7: image 2001: invalid base64", r.Error);
        Assert.Contains($"cnclip: error: {imgs}:8: image 2002: not a recognised image format", r.Error);
        Assert.Contains($"{Path.Combine(data, "test_texts.jsonl")}:13: field 'text_id' missing", r.Error);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(output, "test_imgs.img_feat.jsonl")).Length);
        Assert.Equal(12, File.ReadAllLines(Path.Combine(output, "test_texts.txt_feat.jsonl")).Length);
        Directory.Delete(data, true);
    }

    [Fact]
    public void A_checkpoint_of_another_architecture_is_one_line_and_writes_nothing()
    {
        string data = DataDir(), output = Path.Combine(data, "out");
        var r = CliRunner.Run("extract-features", "--checkpoint", Fixture("parity.pt"), "--arch", "RN50@RBT3-chinese",
            "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", data, "--split", "test", "--output-dir", output);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.Contains("does not fit RN50@RBT3-chinese", r.Error);
        Assert.False(Directory.Exists(output));
        Directory.Delete(data, true);
    }

    [Fact]
    public void A_missing_split_names_both_files()
    {
        string data = DataDir();
        var missing = CliRunner.Run("extract-features", "--checkpoint", Fixture("parity.pt"), "--arch", Fixture("arch.json"),
            "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", data, "--split", "valid", "--output-dir", data);
        Assert.Equal(ExitCodes.BadInput, missing.ExitCode);
        Assert.Contains("valid_imgs.tsv", missing.Error);
        Assert.Contains("valid_texts.jsonl", missing.Error);
        Assert.Contains(Path.Combine("lmdb", "valid"), missing.Error);
        Directory.Delete(data, true);
    }

    [Fact]
    public void The_onnx_backend_over_an_exported_folder_gives_the_official_features()
    {
        string data = DataDir(), onnx = Path.Combine(data, "onnx"), output = Path.Combine(data, "out");
        var export = CliRunner.Run("export-onnx", "--checkpoint", Fixture("parity.pt"), "--arch", Fixture("arch.json"), "--output", onnx);
        Assert.True(export.ExitCode == 0, export.Error);
        var r = CliRunner.Run("extract-features", "--backend", "onnx", "--onnx", onnx, "--vocab", SharedFiles.Path("reference", "vocab.txt"),
            "--data-dir", data, "--split", "test", "--output-dir", output, "--batch-size", "5");
        Assert.True(r.ExitCode == 0, r.Error);
        AssertMatchOfficialFeatures(output);

        // The arch, when given, must be the export's; another vocab than the export's is refused by its hash.
        string vocab = Path.Combine(data, "vocab.txt");
        File.WriteAllLines(vocab, File.ReadAllLines(SharedFiles.Path("reference", "vocab.txt")).Select((l, i) => i == 200 ? "changed" : l));
        foreach (var (args, message) in new[]
        {
            (new[] { "--onnx", onnx, "--vocab", vocab }, "not the vocab"),
            (["--onnx", onnx, "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--arch", "RN50@RBT3-chinese"], "which differs from RN50@RBT3-chinese"),
            (["--vocab", vocab], "--backend onnx needs --onnx DIR"),
            (["--onnx", onnx, "--vocab", vocab, "--checkpoint", Fixture("parity.pt")], "--checkpoint is for --backend torch"),
            (["--onnx", Path.Combine(data, "nowhere"), "--vocab", vocab], "export folder not found"),
        })
        {
            var bad = CliRunner.Run(["extract-features", "--backend", "onnx", .. args, "--data-dir", data, "--split", "test", "--output-dir", Path.Combine(data, "bad")]);
            Assert.Equal(ExitCodes.BadInput, bad.ExitCode);
            Assert.Contains(message, Assert.Single(bad.Error.TrimEnd('\n').Split('\n')));
        }
        Assert.False(Directory.Exists(Path.Combine(data, "bad")));
        var torch = CliRunner.Run("extract-features", "--vocab", vocab, "--data-dir", data, "--split", "test", "--output-dir", output);
        Assert.Contains("--backend torch needs --checkpoint and --arch", torch.Error);
        Directory.Delete(data, true);
    }
}
