using ChineseClip.Model.Imaging;
using Xunit.Abstractions;

namespace ChineseClip.Model.Tests.Imaging;

public class PilResampleTests(ITestOutputHelper output)
{
    [Fact]
    public void The_vectorised_resize_gives_the_same_bytes_as_the_scalar_one()
    {
        if (!PilResample.VectorsAvailable)
        {
            output.WriteLine("no AVX2 here: only the scalar resize runs");
            return;
        }
        var random = new Random(11);
        (int W, int H, int OutW, int OutH)[] shapes =
        [
            (800, 600, 224, 224), (97, 211, 64, 64), (33, 20, 64, 64), (1, 1, 7, 5), (300, 64, 64, 64), (64, 300, 64, 64),
            (5, 3, 2, 9), .. Enumerable.Range(0, 20).Select(_ => (random.Next(1, 300), random.Next(1, 300), random.Next(1, 250), random.Next(1, 250))),
        ];
        foreach (var (w, h, outW, outH) in shapes)
        {
            var source = new byte[w * h * 4];
            random.NextBytes(source);
            byte[] vectorised = new byte[outW * outH * 4], scalar = new byte[outW * outH * 4];
            PilResample.Bicubic(source, w, h, vectorised, outW, outH, vectorised: true);
            PilResample.Bicubic(source, w, h, scalar, outW, outH, vectorised: false);
            Assert.True(scalar.AsSpan().SequenceEqual(vectorised), $"{w}x{h} -> {outW}x{outH}");
        }
    }

    [Fact]
    public void Nearest_takes_the_pixel_under_each_output_centre()
    {
        uint[] source = [1, 2, 3, 4, 5, 6];
        var output2 = new uint[3];
        PilResample.Nearest(source, 6, 1, output2, 3, 1); // centres at 1, 3, 5
        Assert.Equal(new uint[] { 2, 4, 6 }, output2);
        var up = new uint[4];
        PilResample.Nearest([7, 8], 2, 1, up, 4, 1);
        Assert.Equal(new uint[] { 7, 7, 8, 8 }, up);
    }
}
