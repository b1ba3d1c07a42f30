// A port of the arithmetic of Pillow's resizing (libImaging/Resample.c and Geometry.c), so resized pixels equal the
// official PIL pixels exactly. ImageSharp's Bicubic has the same kernel but computes in float without PIL's
// intermediate rounding, which leaves 1-2 levels of difference (see platform-notes.md), hence this code.
//
// 8-bit images are resized as 4-byte pixels (RGBA, RGBX, or a gray value repeated), the layout PIL itself keeps
// multi-band images in: every band goes through the same integer arithmetic, so a gray image resized as four equal
// bands gives PIL's one-band result in each of them. The AVX2 kernels do the very same integer sums as the scalar
// ones (integer addition does not care about order), so both give identical bytes.
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ChineseClip.Model.Imaging;

internal static class PilResample
{
    // PIL: 8 bits for the result, 2 for the overshoot of a kernel with negative lobes, the rest for the fraction.
    const int PrecisionBits = 32 - 8 - 2;
    const int Half = 1 << (PrecisionBits - 1);
    const double BicubicSupport = 2.0;

    internal static bool VectorsAvailable => Avx2.IsSupported;

    // PIL's bicubic kernel, a = -0.5.
    static double Bicubic(double x)
    {
        const double a = -0.5;
        if (x < 0) x = -x;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    /// <summary>Per output position: the first input position, the number of taps, and kernelSize weights (zero past
    /// the taps), normalised to sum 1 as PIL's precompute_coeffs does.</summary>
    sealed class Coefficients
    {
        public readonly int KernelSize;
        public readonly int[] Start, Count;
        public readonly double[] Weights;

        public Coefficients(int inSize, int outSize)
        {
            double scale = (double)inSize / outSize;
            double filterScale = Math.Max(scale, 1.0);
            double support = BicubicSupport * filterScale;
            double inverseScale = 1.0 / filterScale;
            KernelSize = (int)Math.Ceiling(support) * 2 + 1;
            Start = new int[outSize];
            Count = new int[outSize];
            Weights = new double[outSize * KernelSize];
            for (int xx = 0; xx < outSize; xx++)
            {
                double center = (xx + 0.5) * scale;
                int xmin = Math.Max((int)(center - support + 0.5), 0);
                int count = Math.Min((int)(center + support + 0.5), inSize) - xmin;
                Span<double> k = Weights.AsSpan(xx * KernelSize, KernelSize);
                double sum = 0;
                for (int x = 0; x < count; x++)
                {
                    k[x] = Bicubic((x + xmin - center + 0.5) * inverseScale);
                    sum += k[x];
                }
                if (sum != 0)
                    for (int x = 0; x < count; x++) k[x] /= sum;
                Start[xx] = xmin;
                Count[xx] = count;
            }
        }

        /// <summary>The weights in PIL's fixed point, each repeated <paramref name="repeat"/> times (one per band, so a
        /// vector of 4-byte pixels multiplies by them directly). Rented: return to ArrayPool&lt;int&gt;.Shared.</summary>
        public int[] FixedPoint(int repeat)
        {
            var fixedPoint = ArrayPool<int>.Shared.Rent(Weights.Length * repeat);
            for (int i = 0; i < Weights.Length; i++)
            {
                double w = Weights[i] * (1 << PrecisionBits);
                fixedPoint.AsSpan(i * repeat, repeat).Fill((int)(w < 0 ? w - 0.5 : w + 0.5));
            }
            return fixedPoint;
        }
    }

    /// <summary>PIL's BICUBIC resize of 4-byte pixels: horizontal pass first, each pass rounded and clamped to 8 bits,
    /// a pass skipped when its axis keeps its size.</summary>
    public static void Bicubic(ReadOnlySpan<byte> source, int width, int height, Span<byte> output, int outWidth, int outHeight)
        => Bicubic(source, width, height, output, outWidth, outHeight, VectorsAvailable);

    internal static void Bicubic(ReadOnlySpan<byte> source, int width, int height, Span<byte> output, int outWidth, int outHeight,
        bool vectorised)
    {
        if (source.Length < width * height * 4 || output.Length < outWidth * outHeight * 4)
            throw new ArgumentException("source and output must hold 4 bytes per pixel");
        if (outWidth == width && outHeight == height)
        {
            source[..(width * height * 4)].CopyTo(output);
            return;
        }
        if (outWidth == width)
        {
            Vertical(source, width, height, output, outHeight, vectorised);
            return;
        }
        if (outHeight == height)
        {
            Horizontal(source, width, height, output, outWidth, vectorised);
            return;
        }
        byte[] temp = ArrayPool<byte>.Shared.Rent(outWidth * height * 4);
        try
        {
            Horizontal(source, width, height, temp, outWidth, vectorised);
            Vertical(temp, outWidth, height, output, outHeight, vectorised);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(temp);
        }
    }

    static byte Clip8(int sum)
    {
        int v = sum >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    static unsafe void Horizontal(ReadOnlySpan<byte> source, int width, int height, Span<byte> output, int outWidth, bool vectorised)
    {
        var c = new Coefficients(width, outWidth);
        int[] weights = c.FixedPoint(4);
        try
        {
            fixed (byte* src = source, dst = output)
            fixed (int* k = weights, start = c.Start, count = c.Count)
            {
                if (vectorised) HorizontalAvx2(src, width, height, dst, outWidth, start, count, k, c.KernelSize);
                else HorizontalScalar(src, width, height, dst, outWidth, start, count, k, c.KernelSize);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(weights);
        }
    }

    static unsafe void Vertical(ReadOnlySpan<byte> source, int width, int height, Span<byte> output, int outHeight, bool vectorised)
    {
        var c = new Coefficients(height, outHeight);
        int[] weights = c.FixedPoint(1);
        try
        {
            fixed (byte* src = source, dst = output)
            fixed (int* k = weights, start = c.Start, count = c.Count)
            {
                if (vectorised) VerticalAvx2(src, width * 4, dst, outHeight, start, count, k, c.KernelSize);
                else VerticalScalar(src, width * 4, dst, outHeight, start, count, k, c.KernelSize);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(weights);
        }
    }

    // k holds each weight four times (one per band).
    static unsafe void HorizontalScalar(byte* src, int width, int height, byte* dst, int outWidth, int* start, int* count, int* k, int ksize)
    {
        for (int y = 0; y < height; y++)
        {
            byte* line = src + (long)y * width * 4;
            byte* outLine = dst + (long)y * outWidth * 4;
            for (int xx = 0; xx < outWidth; xx++)
            {
                byte* p = line + start[xx] * 4;
                int* w = k + xx * ksize * 4;
                int s0 = Half, s1 = Half, s2 = Half, s3 = Half;
                for (int x = 0, n = count[xx]; x < n; x++, p += 4)
                {
                    int wx = w[x * 4];
                    s0 += p[0] * wx;
                    s1 += p[1] * wx;
                    s2 += p[2] * wx;
                    s3 += p[3] * wx;
                }
                byte* o = outLine + xx * 4;
                o[0] = Clip8(s0);
                o[1] = Clip8(s1);
                o[2] = Clip8(s2);
                o[3] = Clip8(s3);
            }
        }
    }

    static unsafe void VerticalScalar(byte* src, int stride, byte* dst, int outHeight, int* start, int* count, int* k, int ksize)
    {
        for (int yy = 0; yy < outHeight; yy++)
        {
            byte* first = src + (long)start[yy] * stride;
            int* w = k + yy * ksize;
            int n = count[yy];
            byte* outLine = dst + (long)yy * stride;
            for (int i = 0; i < stride; i++)
            {
                int s = Half;
                byte* p = first + i;
                for (int y = 0; y < n; y++, p += stride) s += *p * w[y];
                outLine[i] = Clip8(s);
            }
        }
    }

    // Two pixels (8 bytes widened to 8 ints) per multiply; an odd last tap takes one pixel (4 bytes), so nothing is
    // read past the taps. PackSignedSaturate then PackUnsignedSaturate is clip8: clamp to 0..255.
    static unsafe void HorizontalAvx2(byte* src, int width, int height, byte* dst, int outWidth, int* start, int* count, int* k, int ksize)
    {
        var half = Vector128.Create(Half);
        for (int y = 0; y < height; y++)
        {
            byte* line = src + (long)y * width * 4;
            uint* outLine = (uint*)(dst + (long)y * outWidth * 4);
            for (int xx = 0; xx < outWidth; xx++)
            {
                byte* p = line + start[xx] * 4;
                int* w = k + xx * ksize * 4;
                int n = count[xx], x = 0;
                var acc = Vector256<int>.Zero;
                for (; x + 1 < n; x += 2)
                    acc = Avx2.Add(acc, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + x * 4), Avx.LoadVector256(w + x * 4)));
                var sum = Sse2.Add(Sse2.Add(acc.GetLower(), acc.GetUpper()), half);
                if (x < n) sum = Sse2.Add(sum, Sse41.MultiplyLow(Sse41.ConvertToVector128Int32(p + x * 4), Sse2.LoadVector128(w + x * 4)));
                outLine[xx] = PackToBytes(sum).AsUInt32().ToScalar();
            }
        }
    }

    // Whole rows at once: 32 bytes (four accumulators of 8 ints) per step, then 8, then 4 (rows are whole pixels).
    static unsafe void VerticalAvx2(byte* src, int stride, byte* dst, int outHeight, int* start, int* count, int* k, int ksize)
    {
        var half = Vector256.Create(Half);
        for (int yy = 0; yy < outHeight; yy++)
        {
            byte* first = src + (long)start[yy] * stride;
            int* w = k + yy * ksize;
            int n = count[yy];
            byte* outLine = dst + (long)yy * stride;
            int i = 0;
            for (; i + 32 <= stride; i += 32)
            {
                Vector256<int> a0 = half, a1 = half, a2 = half, a3 = half;
                byte* p = first + i;
                for (int y = 0; y < n; y++, p += stride)
                {
                    var wy = Vector256.Create(w[y]);
                    a0 = Avx2.Add(a0, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p), wy));
                    a1 = Avx2.Add(a1, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 8), wy));
                    a2 = Avx2.Add(a2, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 16), wy));
                    a3 = Avx2.Add(a3, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 24), wy));
                }
                StoreEight(outLine + i, a0);
                StoreEight(outLine + i + 8, a1);
                StoreEight(outLine + i + 16, a2);
                StoreEight(outLine + i + 24, a3);
            }
            for (; i + 8 <= stride; i += 8)
            {
                var a = half;
                byte* p = first + i;
                for (int y = 0; y < n; y++, p += stride)
                    a = Avx2.Add(a, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p), Vector256.Create(w[y])));
                StoreEight(outLine + i, a);
            }
            for (; i < stride; i += 4)
            {
                var a = half.GetLower();
                byte* p = first + i;
                for (int y = 0; y < n; y++, p += stride)
                    a = Sse2.Add(a, Sse41.MultiplyLow(Sse41.ConvertToVector128Int32(p), Vector128.Create(w[y])));
                *(uint*)(outLine + i) = PackToBytes(a).AsUInt32().ToScalar();
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<byte> PackToBytes(Vector128<int> sums)
    {
        var shifted = Sse2.ShiftRightArithmetic(sums, PrecisionBits);
        var words = Sse2.PackSignedSaturate(shifted, shifted);
        return Sse2.PackUnsignedSaturate(words, words);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void StoreEight(byte* destination, Vector256<int> sums)
    {
        var shifted = Avx2.ShiftRightArithmetic(sums, PrecisionBits);
        var words = Sse2.PackSignedSaturate(shifted.GetLower(), shifted.GetUpper());
        *(ulong*)destination = Sse2.PackUnsignedSaturate(words, words).AsUInt64().ToScalar();
    }

    /// <summary>PIL's BICUBIC resize of a 32-bit integer image (mode "I", what Pillow 9 opens 16-bit gray PNGs as):
    /// double sums rounded half away from zero after each pass, no clamping.</summary>
    public static int[] BicubicInt32(ReadOnlySpan<int> source, int width, int height, int outWidth, int outHeight)
    {
        int[] current = source[..(width * height)].ToArray();
        if (outWidth != width)
        {
            var c = new Coefficients(width, outWidth);
            var next = new int[outWidth * height];
            for (int y = 0; y < height; y++)
                for (int xx = 0; xx < outWidth; xx++)
                {
                    double s = 0;
                    for (int x = 0; x < c.Count[xx]; x++) s += current[y * width + c.Start[xx] + x] * c.Weights[xx * c.KernelSize + x];
                    next[y * outWidth + xx] = RoundHalfAway(s);
                }
            current = next;
        }
        if (outHeight != height)
        {
            var c = new Coefficients(height, outHeight);
            var next = new int[outWidth * outHeight];
            for (int yy = 0; yy < outHeight; yy++)
                for (int x = 0; x < outWidth; x++)
                {
                    double s = 0;
                    for (int y = 0; y < c.Count[yy]; y++) s += current[(c.Start[yy] + y) * outWidth + x] * c.Weights[yy * c.KernelSize + y];
                    next[yy * outWidth + x] = RoundHalfAway(s);
                }
            current = next;
        }
        return current;
    }

    static int RoundHalfAway(double v) => (int)(v >= 0 ? v + 0.5 : v - 0.5);

    /// <summary>PIL's NEAREST resize (palette and bilevel images) of 4-byte pixels. Like ImagingScaleAffine the
    /// source position starts at scale/2 and grows by adding scale, so it rounds exactly as PIL's does.</summary>
    public static void Nearest(ReadOnlySpan<uint> source, int width, int height, Span<uint> output, int outWidth, int outHeight)
    {
        Span<int> columns = outWidth <= 1024 ? stackalloc int[outWidth] : new int[outWidth];
        double scaleX = (double)width / outWidth, scaleY = (double)height / outHeight;
        double xo = scaleX * 0.5;
        for (int x = 0; x < outWidth; x++, xo += scaleX) columns[x] = (int)xo < width ? (int)xo : -1;
        double yo = scaleY * 0.5;
        for (int y = 0; y < outHeight; y++, yo += scaleY)
        {
            Span<uint> line = output.Slice(y * outWidth, outWidth);
            int yIn = (int)yo;
            if (yIn >= height)
            {
                line.Clear(); // PIL fills what falls outside the source with zeros
                continue;
            }
            ReadOnlySpan<uint> inLine = source.Slice(yIn * width, width);
            for (int x = 0; x < outWidth; x++) line[x] = columns[x] < 0 ? 0 : inLine[columns[x]];
        }
    }
}
