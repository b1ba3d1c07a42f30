using System.Security.Cryptography;
using ChineseClip.Data.Formats;
using ChineseClip.Onnx.Runtime;

namespace ChineseClip.Cli.Tests;

public class ExportOnnxCommandTests
{
    static string Fixture(string name) => SharedFiles.Path("fixtures", "official-tiny", name);

    static CliRunner.Result Export(string output, params string[] extra) => CliRunner.Run(
        ["export-onnx", "--checkpoint", Fixture("parity.pt"), "--arch", Fixture("arch.json"), "--output", output, .. extra]);

    static string TempDir() => Directory.CreateTempSubdirectory("cnclip-export-onnx").FullName;

    static void AssertOneLineError(CliRunner.Result r, string contains)
    {
        Assert.Equal(2, r.ExitCode);
        string line = Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("cnclip: error: ", line);
        Assert.Contains(contains, line);
    }

    [Theory]
    [InlineData("fp32", 0.99999)]
    [InlineData("fp16", 0.999)]
    public void The_exported_folder_gives_the_official_features_and_records_the_checkpoint(string precision, double bound)
    {
        string dir = TempDir();
        var r = Export(dir, "--precision", precision);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("image.onnx", r.Error);

        using var encoder = OnnxClipEncoder.FromExport(dir);
        using (var stream = File.OpenRead(Fixture("parity.pt")))
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(stream)), encoder.Metadata["checkpoint_sha256"]);
        Assert.Equal(precision, encoder.Metadata["precision"]);
        var official = FeatureJsonl.Read(Fixture("ref_texts.txt_feat.jsonl"), "text_id");
        var rows = File.ReadLines(Fixture("ref_tokens.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        var ids = rows.Select(e => e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).Where(x => x != 0).ToArray()).ToList();
        float[] features = encoder.EncodeTexts(ids);
        for (int i = 0; i < rows.Count; i++)
        {
            double cos = Vectors.Cosine(features.AsSpan(i * 64, 64).ToArray(), official[rows[i].GetProperty("text_id").GetInt64()]);
            Assert.True(cos >= bound, $"{precision} text {i}: cosine {cos}");
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void An_existing_file_needs_force_and_is_left_alone_without_it()
    {
        string dir = TempDir();
        File.WriteAllText(Path.Combine(dir, "image.onnx"), "keep me");
        AssertOneLineError(Export(dir), "image.onnx exists (use --force");
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(dir, "image.onnx")));
        Assert.False(File.Exists(Path.Combine(dir, "text.onnx")));

        var r = Export(dir, "--force", "--towers", "image");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.NotEqual("keep me", File.ReadAllText(Path.Combine(dir, "image.onnx")));
        Assert.False(File.Exists(Path.Combine(dir, "text.onnx")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_checkpoint_that_does_not_fit_the_arch_is_one_line_and_nothing_is_written()
    {
        string dir = TempDir(), output = Path.Combine(dir, "out");
        string arch = Path.Combine(dir, "wider.json");
        File.WriteAllText(arch, File.ReadAllText(Fixture("arch.json")).Replace("\"embed_dim\": 64", "\"embed_dim\": 32"));
        var r = CliRunner.Run("export-onnx", "--checkpoint", Fixture("parity.pt"), "--arch", arch, "--output", output);
        AssertOneLineError(r, "does not fit");
        Assert.False(Directory.Exists(output));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Unknown_arch_bad_opset_bad_towers_and_an_unwritable_folder_are_one_line_errors()
    {
        string dir = TempDir();
        AssertOneLineError(CliRunner.Run("export-onnx", "--checkpoint", Fixture("parity.pt"), "--arch", "ViT-X@Nope", "--output", dir), "unknown architecture 'ViT-X@Nope'");
        AssertOneLineError(Export(dir, "--opset", "13"), "minimum 14");
        AssertOneLineError(Export(dir, "--towers", "image,audio"), "--towers image,audio");
        AssertOneLineError(Export(dir, "--context-length", "65"), "--context-length 65");
        string blocker = Path.Combine(dir, "a-file");
        File.WriteAllText(blocker, "");
        AssertOneLineError(Export(Path.Combine(blocker, "out")), Path.Combine(blocker, "out"));
        AssertOneLineError(Export(dir, "--vocab", Path.Combine(dir, "missing.txt")), "missing.txt: vocab file not found");
        Assert.Equal(["a-file"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_vocab_given_is_hashed_into_the_metadata()
    {
        string dir = TempDir();
        var r = Export(dir, "--towers", "text", "--vocab", SharedFiles.Path("reference", "vocab.txt"));
        Assert.True(r.ExitCode == 0, r.Error);
        using var encoder = OnnxClipEncoder.FromExport(dir);
        using (var stream = File.OpenRead(SharedFiles.Path("reference", "vocab.txt")))
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(stream)), encoder.Metadata["vocab_sha256"]);
        Directory.Delete(dir, true);
    }
}
