using System.Text.Json;
using ChineseClip.Cli.Commands;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Tests;

public class BenchGpuCommandTests
{
    [Fact]
    public void Without_a_cuda_device_bench_gpu_says_so_in_one_line_naming_the_libtorch()
    {
        var r = CliRunner.RunProcess("bench", "gpu", "--check", "--fixtures", SharedFiles.Path("fixtures", "official-tiny"));
        Assert.Equal(ExitCodes.Failure, r.ExitCode);
        string line = Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"cnclip: error: device 'cuda': no CUDA device (torch.cuda.is_available() is false with libtorch {Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so")})", line);
    }

    [Fact]
    public void Bench_gpu_refuses_a_cpu_device_and_an_unsupported_precision()
    {
        Assert.Equal("cnclip: error: --device cpu: bench gpu needs cuda or cuda:N\n", CliRunner.Run("bench", "gpu", "--device", "cpu").Error);
        Assert.Equal("cnclip: error: --precision fp16: expected fp32 or bf16\n", CliRunner.Run("bench", "gpu", "--precision", "fp16").Error);
    }

    // The checks' own code, run with the CPU standing in for the GPU: parity and training steps must hold trivially,
    // and NCCL, absent here, must be reported as a failed check, not end the run.
    [Fact]
    public void The_checks_run_end_to_end_with_the_cpu_in_place_of_the_gpu()
    {
        var json = JsonDocument.Parse(JsonSerializer.Serialize(BenchGpuCommand.Checks(SharedFiles.Path("fixtures", "official-tiny"), CPU))).RootElement;
        var checks = json.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal(["forward-parity", "nccl-world-1", "train-steps-fp32", "train-steps-bf16", "train-steps-fp32-all-levers", "train-steps-bf16-all-levers"], checks.Keys);
        foreach (string name in new[] { "forward-parity", "train-steps-fp32", "train-steps-bf16", "train-steps-fp32-all-levers", "train-steps-bf16-all-levers" })
            Assert.True(checks[name].GetProperty("ok").GetBoolean(), checks[name].ToString());
        Assert.Equal("flat 3, per tensor 0", checks["train-steps-bf16"].GetProperty("detail").GetProperty("bf16_recast").GetString());
        Assert.Equal("flat 3, per tensor 0", checks["train-steps-bf16-all-levers"].GetProperty("detail").GetProperty("bf16_recast").GetString());
        Assert.Contains("libnccl.so.2", checks["nccl-world-1"].GetProperty("detail").GetString());
    }

    [Fact]
    public void Bench_gpu_names_an_unknown_variant_or_round_count_before_looking_for_a_device()
    {
        Assert.Equal("cnclip: error: --variants: 'fast' in 'qkv+fast' is not base, all, or a lever (qkv, nomask, silu, patchmm, pertensor, linear3d, select, full)\n",
            CliRunner.Run("bench", "gpu", "--variants", "base,qkv+fast").Error);
        Assert.Equal("cnclip: error: --variants base,base: a variant is named twice\n", CliRunner.Run("bench", "gpu", "--variants", "base,base").Error);
        Assert.Equal("cnclip: error: --rounds 0: must be at least 1\n", CliRunner.Run("bench", "gpu", "--rounds", "0").Error);
    }

    // The timing's own code on the tiny fixture architecture, the CPU standing in for the GPU: every variant is
    // stepped in every round and cut into phases, and each variant ran the re-cast and kernel paths it names.
    [Fact]
    public void The_timed_variants_run_side_by_side_with_the_cpu_in_place_of_the_gpu()
    {
        var timing = new BenchGpuCommand.Timing(Batch: 2, ContextLength: 16, Steps: 1, Warmup: 0, Precision: "bf16", Checkpointing: false, Rounds: 2,
            PhaseSteps: 1, ProfileStep: false);
        var variants = BenchGpuCommand.Variant.ParseList("base,pertensor+linear3d+select,full+all");
        var json = JsonDocument.Parse(JsonSerializer.Serialize(BenchGpuCommand.Time(SharedFiles.Path("fixtures", "official-tiny", "arch.json"), CPU, timing, variants))).RootElement;
        var results = json.GetProperty("variants").EnumerateArray().ToDictionary(v => v.GetProperty("variant").GetString()!, v => v);
        Assert.Equal(["base", "pertensor+linear3d+select", "full+all"], results.Keys);
        foreach (var (name, v) in results)
        {
            Assert.True(v.GetProperty("fits").GetBoolean(), v.ToString());
            Assert.Equal(2, v.GetProperty("round_medians_ms").GetArrayLength());
            Assert.True(v.GetProperty("phases_ms").GetProperty("loss_backward").GetDouble() > 0, v.ToString());
            Assert.True(v.GetProperty("host_vs_device_ms").GetProperty("device_done").GetDouble() > 0, v.ToString());
        }
        Assert.Equal("flat", results["base"].GetProperty("bf16_recast").GetString());
        Assert.Equal("flat", results["full+all"].GetProperty("bf16_recast").GetString());
        Assert.Equal("per tensor", results["pertensor+linear3d+select"].GetProperty("bf16_recast").GetString());
        foreach (string choice in new[] { "FoldLinearInputs", "UnbindPackedQkv" })
        {
            Assert.True(results["base"].GetProperty("kernels").GetProperty(choice).GetBoolean());
            Assert.False(results["pertensor+linear3d+select"].GetProperty("kernels").GetProperty(choice).GetBoolean());
        }
        foreach (string choice in new[] { "QuickGeluAsSilu", "PatchEmbeddingAsMatmul" })
        {
            Assert.False(results["base"].GetProperty("kernels").GetProperty(choice).GetBoolean());
            Assert.True(results["full+all"].GetProperty("kernels").GetProperty(choice).GetBoolean());
        }
    }
}
