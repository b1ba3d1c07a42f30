// A port of the arithmetic of Pillow's antialiased resampling (libImaging/Resample.c) for 8-bit images, so resized
// pixels equal the official PIL pixels exactly: convolution coefficients normalised per output pixel, converted to
// fixed point with 22 fraction bits, horizontal pass first, each pass rounded and clamped to 8 bits, and a pass
// skipped when its axis keeps its size. ImageSharp's Bicubic has the same kernel but computes in float without the
// intermediate rounding, which leaves 1-2 levels of difference (see platform-notes.md), hence this code.
using System.Collections.Concurrent;

namespace ChineseClip.Model.Imaging;

public static class PilResample
{
    const int PrecisionBits = 32 - 8 - 2;
    const double BicubicSupport = 2.0;

    sealed record Coefficients(int KernelSize, int[] Bounds, int[] Weights);

    static readonly ConcurrentDictionary<(int In, int Out), Coefficients> Cache = new();

    // PIL's bicubic kernel, a = -0.5.
    static double Bicubic(double x)
    {
        const double a = -0.5;
        if (x < 0) x = -x;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    static Coefficients Precompute(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = BicubicSupport * filterScale;
        int kernelSize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * kernelSize];
        var k = new double[kernelSize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterScale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            double sum = 0;
            for (int x = 0; x < xmax; x++)
            {
                k[x] = Bicubic((x + xmin - center + 0.5) * ss);
                sum += k[x];
            }
            for (int x = 0; x < kernelSize; x++)
            {
                double w = x < xmax ? (sum != 0 ? k[x] / sum : k[x]) : 0;
                weights[xx * kernelSize + x] = (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return new Coefficients(kernelSize, bounds, weights);
    }

    static byte Clip8(int value)
    {
        int v = value >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>Bicubic resize of interleaved 8-bit pixels with <paramref name="channels"/> channels, as PIL does it.</summary>
    public static byte[] Bicubic(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight)
    {
        byte[] current = source.ToArray();
        int w = width;
        if (outWidth != width)
        {
            var c = Cache.GetOrAdd((width, outWidth), key => Precompute(key.In, key.Out));
            var next = new byte[outWidth * height * channels];
            for (int y = 0; y < height; y++)
            {
                int rowIn = y * width * channels, rowOut = y * outWidth * channels;
                for (int xx = 0; xx < outWidth; xx++)
                {
                    int xmin = c.Bounds[xx * 2], xmax = c.Bounds[xx * 2 + 1], kOffset = xx * c.KernelSize;
                    for (int ch = 0; ch < channels; ch++)
                    {
                        int ss = 1 << (PrecisionBits - 1);
                        int p = rowIn + xmin * channels + ch;
                        for (int x = 0; x < xmax; x++, p += channels) ss += current[p] * c.Weights[kOffset + x];
                        next[rowOut + xx * channels + ch] = Clip8(ss);
                    }
                }
            }
            current = next;
            w = outWidth;
        }
        if (outHeight != height)
        {
            var c = Cache.GetOrAdd((height, outHeight), key => Precompute(key.In, key.Out));
            int stride = w * channels;
            var next = new byte[outHeight * stride];
            var acc = new int[stride];
            for (int yy = 0; yy < outHeight; yy++)
            {
                int ymin = c.Bounds[yy * 2], ymax = c.Bounds[yy * 2 + 1], kOffset = yy * c.KernelSize;
                Array.Fill(acc, 1 << (PrecisionBits - 1));
                for (int y = 0; y < ymax; y++)
                {
                    int weight = c.Weights[kOffset + y];
                    int row = (ymin + y) * stride;
                    for (int i = 0; i < stride; i++) acc[i] += current[row + i] * weight;
                }
                int outRow = yy * stride;
                for (int i = 0; i < stride; i++) next[outRow + i] = Clip8(acc[i]);
            }
            current = next;
        }
        return current;
    }

    /// <summary>PIL's NEAREST resize (used for palette and bilevel images): source = floor((x + 0.5) * scale).</summary>
    public static byte[] Nearest(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight)
    {
        var output = new byte[outWidth * outHeight * channels];
        double sx = (double)width / outWidth, sy = (double)height / outHeight;
        for (int y = 0; y < outHeight; y++)
        {
            int yIn = Math.Min((int)((y + 0.5) * sy), height - 1);
            for (int x = 0; x < outWidth; x++)
            {
                int xIn = Math.Min((int)((x + 0.5) * sx), width - 1);
                source.Slice((yIn * width + xIn) * channels, channels).CopyTo(output.AsSpan((y * outWidth + x) * channels, channels));
            }
        }
        return output;
    }
}
