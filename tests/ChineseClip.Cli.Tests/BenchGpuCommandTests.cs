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
        Assert.Equal(["forward-parity", "nccl-world-1", "train-steps-fp32", "train-steps-bf16"], checks.Keys);
        Assert.True(checks["forward-parity"].GetProperty("ok").GetBoolean(), checks["forward-parity"].ToString());
        Assert.True(checks["train-steps-fp32"].GetProperty("ok").GetBoolean(), checks["train-steps-fp32"].ToString());
        Assert.Contains("libnccl.so.2", checks["nccl-world-1"].GetProperty("detail").GetString());
    }
}
