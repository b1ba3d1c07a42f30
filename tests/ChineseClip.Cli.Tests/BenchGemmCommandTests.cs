using System.Text.Json;

namespace ChineseClip.Cli.Tests;

public class BenchGemmCommandTests
{
    [Fact]
    public void Bench_gemm_times_the_three_products_of_each_shape_and_their_rate()
    {
        var r = CliRunner.Run("bench", "gemm", "--shapes", "64x32x16, 8x4x2", "--threads", "1", "--repeats", "3");
        Assert.True(r.ExitCode == 0, r.Error);
        var json = JsonDocument.Parse(Assert.Single(r.OutLines)).RootElement;
        var shapes = json.GetProperty("shapes").EnumerateArray().ToArray();
        Assert.Equal(2, shapes.Length);
        Assert.Equal([64, 32, 16], new[] { "rows", "in", "out" }.Select(k => shapes[0].GetProperty(k).GetInt32()));
        double total = 0;
        foreach (var shape in shapes)
        {
            double flops = 2.0 * shape.GetProperty("rows").GetInt32() * shape.GetProperty("in").GetInt32() * shape.GetProperty("out").GetInt32();
            foreach (string product in new[] { "forward", "grad_input", "grad_weight" })
            {
                double ms = shape.GetProperty(product + "_ms").GetDouble();
                Assert.True(ms > 0, product);
                total += ms;
                // the rate is the flops over the (rounded) time
                Assert.Equal(flops / ms / 1e6, shape.GetProperty(product + "_gflops").GetDouble(), 0.02 * flops / ms / 1e6 + 0.01);
            }
        }
        Assert.Equal(total, json.GetProperty("total_ms").GetDouble(), 0.01);
    }

    [Theory]
    [InlineData("64x32", "--shapes: '64x32' is not ROWSxINxOUT with three positive integers")]
    [InlineData("64x0x8", "--shapes: '64x0x8' is not ROWSxINxOUT with three positive integers")]
    [InlineData(" , ", "--shapes: no shape given")]
    public void Bad_shapes_are_one_line_naming_the_shape(string shapes, string message)
    {
        var r = CliRunner.Run("bench", "gemm", "--shapes", shapes, "--threads", "1");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal($"cnclip: error: {message}\n", r.Error);
    }
}
