using ChineseClip.Model.Checkpoints;
using TorchSharp;

namespace ChineseClip.Cli.Tests;

public class ConvertModelCommandTests
{
    static readonly string Parity = SharedFiles.Path("fixtures", "official-tiny", "parity.pt");
    static readonly string Arch = SharedFiles.Path("fixtures", "official-tiny", "arch.json");

    [Fact]
    public void Official_to_hf_to_official_gives_identical_tensors()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-convert").FullName;
        string hf = Path.Combine(dir, "model.safetensors"), back = Path.Combine(dir, "back.pt");
        var toHf = CliRunner.Run("convert-model", "--input", Parity, "--output", hf, "--to", "hf", "--arch", Arch);
        Assert.True(toHf.ExitCode == 0, toHf.Error);
        Assert.True(HfMapping.IsHf(SafetensorsFile.Load(hf).Keys));
        var toOfficial = CliRunner.Run("convert-model", "--input", hf, "--output", back, "--to", "official", "--arch", Arch);
        Assert.True(toOfficial.ExitCode == 0, toOfficial.Error);

        var original = OfficialCheckpoint.Load(Parity);
        var roundTrip = OfficialCheckpoint.Load(back);
        Assert.Equal(original.StateDict.Keys.Order(), roundTrip.StateDict.Keys.Order());
        foreach (var (key, value) in original.StateDict) { var other = roundTrip.StateDict[key]; Assert.Equal(value.shape, other.shape); Assert.Equal(value.dtype, other.dtype); Assert.True(value.eq(other).all().item<bool>(), key); }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_checkpoint_that_does_not_fit_the_architecture_is_refused_in_one_line()
    {
        string output = Path.Combine(Path.GetTempPath(), $"nofit-{Guid.NewGuid():N}.pt");
        var r = CliRunner.Run("convert-model", "--input", Parity, "--output", output, "--to", "official", "--arch", "RN50@RBT3-chinese");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.Contains("does not fit RN50@RBT3-chinese", r.Error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void An_unknown_target_format_is_refused()
    {
        var r = CliRunner.Run("convert-model", "--input", Parity, "--output", "/tmp/x.onnx", "--to", "onnx");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("onnx", r.Error);
    }

    [Fact]
    public void A_file_that_is_not_a_checkpoint_is_one_line_naming_it()
    {
        string junk = Path.GetTempFileName();
        File.WriteAllText(junk, "definitely not a zip");
        var r = CliRunner.Run("convert-model", "--input", junk, "--output", junk + ".pt", "--to", "official");
        File.Delete(junk);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.Contains(junk, r.Error);
    }
}
