using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class BenchTrainStepCommandTests
{
    [Fact]
    public void Bench_train_step_prints_one_json_line_with_the_median_and_throughput()
    {
        var r = CliRunner.Run("bench", "train-step", "--arch", SharedFiles.Path("fixtures", "official-tiny", "arch.json"),
            "--batch", "2", "--steps", "3", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Error);
        var json = JsonDocument.Parse(Assert.Single(r.OutLines)).RootElement;
        double median = json.GetProperty("ms_per_step_median").GetDouble();
        Assert.True(median > 0);
        Assert.Equal(3, json.GetProperty("ms_per_step").GetArrayLength());
        Assert.Equal(2 * 1000 / median, json.GetProperty("samples_per_s").GetDouble(), 0);
        Assert.True(float.IsFinite(json.GetProperty("final_loss").GetSingle()));
    }

    [Fact]
    public void Bench_train_step_in_bf16_runs_on_the_CPU_and_its_loss_stays_near_fp32s()
    {
        JsonElement Step(string precision)
        {
            // Own processes: torch's random generator is process-wide, and tests running beside this one draw from it.
            var r = CliRunner.RunProcess("bench", "train-step", "--arch", SharedFiles.Path("fixtures", "official-tiny", "arch.json"),
                "--batch", "4", "--steps", "2", "--threads", "1", "--precision", precision);
            Assert.True(r.ExitCode == 0, r.Error);
            return JsonDocument.Parse(r.OutLines.Single(l => l.StartsWith('{'))).RootElement;
        }
        var fp32 = Step("fp32");
        var bf16 = Step("bf16");
        Assert.Equal("fp32", fp32.GetProperty("precision").GetString());
        Assert.Equal("bf16", bf16.GetProperty("precision").GetString());
        float a = fp32.GetProperty("final_loss").GetSingle(), b = bf16.GetProperty("final_loss").GetSingle();
        Assert.NotEqual(a, b); // the passes really ran in bf16
        Assert.Equal(a, b, 0.05 * Math.Abs(a)); // same seed, same inputs: bf16 rounding, not another computation
    }

    [Fact]
    public void An_unknown_precision_is_one_line()
    {
        var r = CliRunner.Run("bench", "train-step", "--arch", "ViT-B-16@RoBERTa-wwm-ext-base-chinese", "--batch", "1", "--steps", "1",
            "--threads", "1", "--precision", "fp16");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal("cnclip: error: --precision fp16: expected fp32 or bf16\n", r.Error);
    }

    [Theory]
    [InlineData("--batch", "0", "--batch 0: must be at least 1")]
    [InlineData("--threads", "0", "--threads 0: must be at least 1")]
    public void Bench_train_step_refuses_bad_numbers_in_one_line(string option, string value, string message)
    {
        var args = new Dictionary<string, string> { ["--batch"] = "1", ["--steps"] = "1", ["--threads"] = "1" };
        args[option] = value;
        var r = CliRunner.Run(["bench", "train-step", "--arch", "ViT-B-16@RoBERTa-wwm-ext-base-chinese", .. args.SelectMany(a => new[] { a.Key, a.Value })]);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal($"cnclip: error: {message}\n", r.Error);
    }

    [Fact]
    public void An_unknown_architecture_is_one_line_and_exit_code_2()
    {
        var r = CliRunner.Run("bench", "train-step", "--arch", "ViT-Z@nothing", "--batch", "1", "--steps", "1", "--threads", "1");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("cnclip: error: unknown architecture 'ViT-Z@nothing'", r.Error);
    }

    [Fact]
    public void A_missing_required_option_is_one_line_and_exit_code_2()
    {
        var r = CliRunner.Run("bench", "train-step", "--arch", "x");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void Every_verb_has_help()
    {
        foreach (var verb in new[] { new[] { "bench", "train-step" } })
        {
            var r = CliRunner.Run([.. verb, "--help"]);
            Assert.Equal(0, r.ExitCode);
            Assert.Contains("--arch", r.Out);
        }
    }
}

public class BenchPreprocessCommandTests
{
    [Fact]
    public void Bench_preprocess_prints_images_per_second_for_the_whole_file()
    {
        var r = CliRunner.Run("bench", "preprocess", "--input", SharedFiles.Path("fixtures", "official-tiny", "test_imgs.tsv"), "--res", "64", "--rounds", "1");
        Assert.True(r.ExitCode == 0, r.Error);
        var json = System.Text.Json.JsonDocument.Parse(Assert.Single(r.OutLines)).RootElement;
        Assert.Equal(6, json.GetProperty("images").GetInt32());
        Assert.Equal(0, json.GetProperty("failed").GetInt32());
        Assert.True(json.GetProperty("images_per_s").GetDouble() > 0);
        Assert.Equal("exact", json.GetProperty("mode").GetString());
    }

    [Fact]
    public void Bench_preprocess_fast_says_so_and_decodes_every_image()
    {
        var r = CliRunner.Run("bench", "preprocess", "--input", SharedFiles.Path("fixtures", "official-tiny", "test_imgs.tsv"), "--res", "64", "--rounds", "1", "--fast");
        Assert.True(r.ExitCode == 0, r.Error);
        var json = System.Text.Json.JsonDocument.Parse(Assert.Single(r.OutLines)).RootElement;
        Assert.Equal("fast", json.GetProperty("mode").GetString());
        Assert.Equal(6, json.GetProperty("images").GetInt32());
        Assert.Equal(0, json.GetProperty("failed").GetInt32());
    }
}
