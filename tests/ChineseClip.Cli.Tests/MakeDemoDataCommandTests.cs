namespace ChineseClip.Cli.Tests;

public class MakeDemoDataCommandTests
{
    [Fact]
    public void Make_demo_data_writes_three_datasets_and_reports_their_sizes()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cnclip-demo-{Guid.NewGuid():N}");
        var r = CliRunner.Run("make-demo-data", "--output", dir, "--scale", "0.05", "--seed", "1");
        Assert.True(r.ExitCode == 0, r.Error);
        foreach (string dataset in new[] { "stage1-muge", "stage2-flickr", "stage3-private" })
            Assert.True(File.Exists(Path.Combine(dir, dataset, "valid_texts.jsonl")), dataset);
        Assert.Contains("stage1-muge/train: 30 images", r.Error);
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    public void A_bad_scale_is_one_line_and_exit_code_2(string scale)
    {
        var r = CliRunner.Run("make-demo-data", "--output", Path.GetTempPath(), "--scale", scale);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal($"cnclip: error: --scale {scale}: must be above 0 and at most 100\n", r.Error);
    }
}
