using System.Text.Json.Nodes;

namespace ChineseClip.Training.Tests;

public class DeviceSettingsTests
{
    static TrainOptions Bind(string extra) =>
        TrainOptions.FromJson(JsonNode.Parse($$"""{"train_data": "/d", "arch": "RN50@RBT3-chinese", "vocab": "/v", {{extra}}}""")!.AsObject(), "cfg", "/");

    [Fact]
    public void Defaults_are_cpu_fp32_without_tf32_and_libtorch_choosing_the_attention_kernel()
    {
        var o = Bind("\"seed\": 1");
        Assert.Equal(("cpu", "fp32", false, "auto"), (o.Device, o.Precision, o.Tf32, o.SdpaBackend));
    }

    [Theory]
    [InlineData("\"device\": \"cuda:1\", \"precision\": \"bf16\", \"tf32\": true, \"sdpa_backend\": \"flash\"", null)]
    [InlineData("\"device\": \"cuda\"", null)]
    [InlineData("\"device\": \"gpu\"", "cfg: key 'device': 'gpu' is not cpu, cuda or cuda:N")]
    [InlineData("\"device\": \"cuda:-1\"", "cfg: key 'device': 'cuda:-1' is not cpu, cuda or cuda:N")]
    [InlineData("\"precision\": \"amp\"", "cfg: key 'precision': 'amp' (an official choice) is not supported here: use fp32 or bf16")]
    [InlineData("\"precision\": \"fp16\"", "cfg: key 'precision': 'fp16' (an official choice) is not supported here: use fp32 or bf16")]
    [InlineData("\"precision\": \"fp64\"", "cfg: key 'precision': 'fp64' is not one of fp32, bf16")]
    [InlineData("\"sdpa_backend\": \"cudnn\"", "cfg: key 'sdpa_backend': 'cudnn' is not one of auto, flash, math")]
    public void Device_precision_and_attention_switches_are_checked_by_name(string extra, string? error)
    {
        if (error is null) Bind(extra);
        else Assert.Equal(error, Assert.Throws<InvalidDataException>(() => Bind(extra)).Message);
    }

    [Fact]
    public void Training_on_a_cuda_device_where_there_is_none_fails_before_reading_data()
    {
        var e = Assert.Throws<DeviceUnavailableException>(() => new Trainer(Bind("\"device\": \"cuda:0\""), TextWriter.Null).Run());
        Assert.StartsWith("device 'cuda:0': no CUDA device (torch.cuda.is_available() is false with libtorch /", e.Message);
    }
    // The test build's libtorch is the CPU-only package: an "auto" worker must fall back to the CPU, whatever its index.
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(-1)]
    public void Auto_is_the_cpu_where_libtorch_sees_no_gpu(int index) => Assert.Equal("cpu", DeviceSettings.Auto(index));
}
