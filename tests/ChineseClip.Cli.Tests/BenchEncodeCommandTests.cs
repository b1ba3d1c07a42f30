using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class BenchEncodeCommandTests
{
    static readonly string Arch = SharedFiles.Path("fixtures", "official-tiny", "arch.json");

    static JsonElement Bench(params string[] extra)
    {
        var r = CliRunner.Run(["bench", "encode", "--arch", Arch, "--batch", "3", "--threads", "1", "--rounds", "2", .. extra]);
        Assert.True(r.ExitCode == 0, r.Error);
        return JsonDocument.Parse(Assert.Single(r.OutLines)).RootElement;
    }

    [Fact]
    public void Both_backends_print_one_json_line_with_images_and_texts_per_second()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-bench-encode").FullName;
        var export = CliRunner.Run("export-onnx", "--checkpoint", SharedFiles.Path("fixtures", "official-tiny", "parity.pt"), "--arch", Arch, "--output", dir);
        Assert.True(export.ExitCode == 0, export.Error);
        foreach (var json in new[] { Bench("--backend", "torch"), Bench("--backend", "onnx", "--onnx", dir) })
        {
            double imageMs = json.GetProperty("image_ms_median").GetDouble(), textMs = json.GetProperty("text_ms_median").GetDouble();
            Assert.True(imageMs > 0 && textMs > 0);
            // The medians are printed rounded to 0.01 ms (the tiny model's text median is about 1 ms, so that is up to
            // a relative 1%), and the rates to 0.01: each rate lies within what its median's rounding allows.
            static void RateFits(double rate, double ms) =>
                Assert.InRange(rate, 3 * 1000 / (ms + 0.005) - 0.005, 3 * 1000 / Math.Max(ms - 0.005, 1e-9) + 0.005);
            RateFits(json.GetProperty("images_per_s").GetDouble(), imageMs);
            RateFits(json.GetProperty("texts_per_s").GetDouble(), textMs);
            Assert.Equal(2, json.GetProperty("image_ms").GetArrayLength());
            Assert.Equal(52, json.GetProperty("context_length").GetInt32());
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_onnx_backend_exports_the_random_model_once_and_reuses_it()
    {
        var first = Bench("--backend", "onnx", "--precision", "fp16");
        string folder = first.GetProperty("onnx").GetString()!;
        Assert.True(File.Exists(Path.Combine(folder, "image.onnx")));
        Assert.True(first.GetProperty("image_onnx_mib").GetDouble() > 0);
        var second = Bench("--backend", "onnx", "--precision", "fp16");
        Assert.Equal(folder, second.GetProperty("onnx").GetString());
        Assert.Equal(JsonValueKind.Null, second.GetProperty("export_s").ValueKind);
    }

    [Fact]
    public void Onnx_options_with_the_torch_backend_and_another_arch_s_export_are_refused()
    {
        var r = CliRunner.Run("bench", "encode", "--backend", "torch", "--arch", Arch, "--precision", "fp16");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("--precision and --onnx are for --backend onnx", r.Error);

        string dir = Directory.CreateTempSubdirectory("cnclip-bench-encode").FullName;
        Assert.Equal(0, CliRunner.Run("export-onnx", "--checkpoint", SharedFiles.Path("fixtures", "official-tiny", "parity.pt"), "--arch", Arch,
            "--output", dir, "--towers", "text").ExitCode);
        r = CliRunner.Run("bench", "encode", "--backend", "onnx", "--arch", "ViT-B-16@RoBERTa-wwm-ext-base-chinese", "--onnx", dir);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("not ViT-B-16@RoBERTa-wwm-ext-base-chinese", r.Error);
        Directory.Delete(dir, true);
    }
}
