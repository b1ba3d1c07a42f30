// AutoAugment as the official training transform configures it (timm's auto_augment_transform('original') with
// hparams translate_const int(0.45 R), img_mean round(255 * CLIP mean) and bicubic): one of the 25 sub-policies of
// the AutoAugment paper's ImageNet policy is chosen uniformly, and each of its two operations runs with its
// probability at its fixed magnitude (0-10). The operations follow their PIL definitions (ImageOps, ImageEnhance,
// Image.rotate/transform) in 8-bit arithmetic, so each one reproduces what PIL computes for the same arguments.
// Images are 4-byte pixels (RGB plus an unused fourth byte), the layout PIL keeps RGB images in.
namespace ChineseClip.Model.Imaging;

internal enum AugmentOp { PosterizeOriginal, Rotate, Solarize, AutoContrast, Equalize, Invert, Color, Contrast, Sharpness, ShearX }

internal static class AutoAugment
{
    internal readonly record struct Step(AugmentOp Op, double Probability, int Magnitude);

    static Step S(AugmentOp op, double p, int m) => new(op, p, m);

    // timm's auto_augment_policy_original (https://arxiv.org/abs/1805.09501, ImageNet).
    internal static readonly Step[][] OriginalPolicy =
    [
        [S(AugmentOp.PosterizeOriginal, 0.4, 8), S(AugmentOp.Rotate, 0.6, 9)],
        [S(AugmentOp.Solarize, 0.6, 5), S(AugmentOp.AutoContrast, 0.6, 5)],
        [S(AugmentOp.Equalize, 0.8, 8), S(AugmentOp.Equalize, 0.6, 3)],
        [S(AugmentOp.PosterizeOriginal, 0.6, 7), S(AugmentOp.PosterizeOriginal, 0.6, 6)],
        [S(AugmentOp.Equalize, 0.4, 7), S(AugmentOp.Solarize, 0.2, 4)],
        [S(AugmentOp.Equalize, 0.4, 4), S(AugmentOp.Rotate, 0.8, 8)],
        [S(AugmentOp.Solarize, 0.6, 3), S(AugmentOp.Equalize, 0.6, 7)],
        [S(AugmentOp.PosterizeOriginal, 0.8, 5), S(AugmentOp.Equalize, 1.0, 2)],
        [S(AugmentOp.Rotate, 0.2, 3), S(AugmentOp.Solarize, 0.6, 8)],
        [S(AugmentOp.Equalize, 0.6, 8), S(AugmentOp.PosterizeOriginal, 0.4, 6)],
        [S(AugmentOp.Rotate, 0.8, 8), S(AugmentOp.Color, 0.4, 0)],
        [S(AugmentOp.Rotate, 0.4, 9), S(AugmentOp.Equalize, 0.6, 2)],
        [S(AugmentOp.Equalize, 0.0, 7), S(AugmentOp.Equalize, 0.8, 8)],
        [S(AugmentOp.Invert, 0.6, 4), S(AugmentOp.Equalize, 1.0, 8)],
        [S(AugmentOp.Color, 0.6, 4), S(AugmentOp.Contrast, 1.0, 8)],
        [S(AugmentOp.Rotate, 0.8, 8), S(AugmentOp.Color, 1.0, 2)],
        [S(AugmentOp.Color, 0.8, 8), S(AugmentOp.Solarize, 0.8, 7)],
        [S(AugmentOp.Sharpness, 0.4, 7), S(AugmentOp.Invert, 0.6, 8)],
        [S(AugmentOp.ShearX, 0.6, 5), S(AugmentOp.Equalize, 1.0, 9)],
        [S(AugmentOp.Color, 0.4, 0), S(AugmentOp.Equalize, 0.6, 3)],
        [S(AugmentOp.Equalize, 0.4, 7), S(AugmentOp.Solarize, 0.2, 4)],
        [S(AugmentOp.Solarize, 0.6, 5), S(AugmentOp.AutoContrast, 0.6, 5)],
        [S(AugmentOp.Invert, 0.6, 4), S(AugmentOp.Equalize, 1.0, 8)],
        [S(AugmentOp.Color, 0.6, 4), S(AugmentOp.Contrast, 1.0, 8)],
        [S(AugmentOp.Equalize, 0.8, 8), S(AugmentOp.Equalize, 0.6, 3)],
    ];

    const double MaxLevel = 10.0;

    /// <summary>timm's img_mean hparam: the fill of pixels that rotate and shear bring in from outside.</summary>
    internal static readonly byte[] Fill = [123, 117, 104];

    /// <summary>Chooses a sub-policy and runs it on the image (in place); <paramref name="scratch"/> holds at least
    /// as many bytes as the image.</summary>
    public static void Apply(ref AugmentRandom random, Span<byte> rgba, int width, int height, Span<byte> scratch)
    {
        foreach (var step in OriginalPolicy[random.NextInt(OriginalPolicy.Length)])
        {
            if (step.Probability < 1.0 && random.NextDouble() > step.Probability) continue;
            Run(step.Op, Argument(ref random, step.Op, step.Magnitude), rgba, width, height, scratch);
        }
    }

    // timm's *_level_to_arg functions; rotate and shear flip their sign with probability 0.5.
    internal static double Argument(ref AugmentRandom random, AugmentOp op, double level) => op switch
    {
        AugmentOp.Rotate => RandomlyNegated(ref random, level / MaxLevel * 30.0),
        AugmentOp.ShearX => RandomlyNegated(ref random, level / MaxLevel * 0.3),
        AugmentOp.PosterizeOriginal => (int)(level / MaxLevel * 4) + 4,
        AugmentOp.Solarize => (int)(level / MaxLevel * 256),
        AugmentOp.Color or AugmentOp.Contrast or AugmentOp.Sharpness => level / MaxLevel * 1.8 + 0.1,
        _ => 0,
    };

    static double RandomlyNegated(ref AugmentRandom random, double value) => random.NextDouble() > 0.5 ? -value : value;

    /// <summary>One operation with its argument (degrees, shear factor, bits kept, threshold or enhance factor).</summary>
    internal static void Run(AugmentOp op, double argument, Span<byte> rgba, int width, int height, Span<byte> scratch)
    {
        int length = 4 * width * height;
        rgba = rgba[..length];
        scratch = scratch[..length];
        switch (op)
        {
            case AugmentOp.PosterizeOriginal:
                if (argument < 8) ApplyLut(rgba, SameForEachBand(v => v & ~((1 << (8 - (int)argument)) - 1)));
                break;
            case AugmentOp.Solarize:
                ApplyLut(rgba, SameForEachBand(v => v < argument ? v : 255 - v));
                break;
            case AugmentOp.Invert:
                ApplyLut(rgba, SameForEachBand(v => 255 - v));
                break;
            case AugmentOp.AutoContrast:
                ApplyLut(rgba, AutoContrastLut(Histogram(rgba)));
                break;
            case AugmentOp.Equalize:
                ApplyLut(rgba, EqualizeLut(Histogram(rgba)));
                break;
            case AugmentOp.Color:
                Grayscale(rgba, scratch);
                Blend(scratch, rgba, (float)argument);
                break;
            case AugmentOp.Contrast:
                scratch.Fill(MeanGray(rgba));
                Blend(scratch, rgba, (float)argument);
                break;
            case AugmentOp.Sharpness:
                Smooth(rgba, width, height, scratch);
                Blend(scratch, rgba, (float)argument);
                break;
            case AugmentOp.Rotate:
                Affine(rgba, width, height, RotationMatrix(argument, width, height), scratch);
                scratch.CopyTo(rgba);
                break;
            case AugmentOp.ShearX:
                Affine(rgba, width, height, [1, argument, 0, 0, 1, 0], scratch);
                scratch.CopyTo(rgba);
                break;
        }
    }

    static int[] SameForEachBand(Func<int, int> f)
    {
        var lut = new int[3 * 256];
        for (int v = 0; v < 256; v++) lut[v] = lut[256 + v] = lut[512 + v] = f(v);
        return lut;
    }

    // Image.point with an 8-bit table: PIL clamps the table's entries to 0..255.
    static void ApplyLut(Span<byte> rgba, int[] lut)
    {
        Span<byte> table = stackalloc byte[3 * 256];
        for (int i = 0; i < table.Length; i++) table[i] = (byte)Math.Clamp(lut[i], 0, 255);
        for (int i = 0; i < rgba.Length; i += 4)
        {
            rgba[i] = table[rgba[i]];
            rgba[i + 1] = table[256 + rgba[i + 1]];
            rgba[i + 2] = table[512 + rgba[i + 2]];
        }
    }

    static int[] Histogram(ReadOnlySpan<byte> rgba)
    {
        var histogram = new int[3 * 256];
        for (int i = 0; i < rgba.Length; i += 4)
        {
            histogram[rgba[i]]++;
            histogram[256 + rgba[i + 1]]++;
            histogram[512 + rgba[i + 2]]++;
        }
        return histogram;
    }

    // ImageOps.autocontrast(cutoff=0): each band stretched so its lowest value becomes 0 and its highest 255.
    static int[] AutoContrastLut(int[] histogram)
    {
        var lut = new int[3 * 256];
        for (int b = 0; b < 3; b++)
        {
            ReadOnlySpan<int> h = histogram.AsSpan(b * 256, 256);
            int lo = 0, hi = 255;
            while (lo < 256 && h[lo] == 0) lo++;
            while (hi >= 0 && h[hi] == 0) hi--;
            for (int v = 0; v < 256; v++)
            {
                if (hi <= lo) { lut[b * 256 + v] = v; continue; }
                double scale = 255.0 / (hi - lo), offset = -lo * scale;
                lut[b * 256 + v] = Math.Clamp((int)(v * scale + offset), 0, 255);
            }
        }
        return lut;
    }

    // ImageOps.equalize: per band, a cumulative-histogram table with step = (pixels - count of the last used
    // value) // 256; a band with one used value (or a zero step) is left as it is.
    static int[] EqualizeLut(int[] histogram)
    {
        var lut = new int[3 * 256];
        for (int b = 0; b < 3; b++)
        {
            ReadOnlySpan<int> h = histogram.AsSpan(b * 256, 256);
            long used = 0, total = 0, last = 0;
            foreach (int count in h)
                if (count != 0) { used++; total += count; last = count; }
            long step = used <= 1 ? 0 : (total - last) / 256;
            long n = step / 2;
            for (int v = 0; v < 256; v++)
            {
                lut[b * 256 + v] = step == 0 ? v : (int)Math.Min(n / step, 255);
                n += h[v];
            }
        }
        return lut;
    }

    // convert("L"): L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
    static byte Luma(ReadOnlySpan<byte> rgba, int i) => (byte)((rgba[i] * 19595 + rgba[i + 1] * 38470 + rgba[i + 2] * 7471 + 0x8000) >> 16);

    // ImageEnhance.Color's degenerate: the image in gray, back to RGB.
    static void Grayscale(ReadOnlySpan<byte> rgba, Span<byte> gray)
    {
        for (int i = 0; i < rgba.Length; i += 4)
        {
            byte l = Luma(rgba, i);
            gray[i] = gray[i + 1] = gray[i + 2] = l;
            gray[i + 3] = rgba[i + 3];
        }
    }

    // ImageEnhance.Contrast's degenerate: int(mean of the gray image + 0.5) everywhere.
    static byte MeanGray(ReadOnlySpan<byte> rgba)
    {
        long sum = 0;
        int count = rgba.Length / 4;
        for (int i = 0; i < rgba.Length; i += 4) sum += Luma(rgba, i);
        return (byte)(int)((double)sum / count + 0.5);
    }

    // ImageEnhance.Sharpness's degenerate: ImageFilter.SMOOTH (3x3, weights 1 and centre 5, divided by 13) in float
    // with 0.5 added and truncation, as Pillow's ImagingFilter3x3; the outermost rows and columns are copied.
    static void Smooth(ReadOnlySpan<byte> rgba, int width, int height, Span<byte> output)
    {
        rgba.CopyTo(output);
        float edge = 1f / 13f, centre = 5f / 13f;
        for (int y = 1; y < height - 1; y++)
            for (int x = 1; x < width - 1; x++)
                for (int b = 0; b < 3; b++)
                {
                    float sum = 0.5f;
                    for (int dy = 1; dy >= -1; dy--)
                    {
                        int row = 4 * ((y + dy) * width + x) + b;
                        sum += rgba[row - 4] * edge + rgba[row] * (dy == 0 ? centre : edge) + rgba[row + 4] * edge;
                    }
                    output[4 * (y * width + x) + b] = sum <= 0 ? (byte)0 : sum >= 255 ? (byte)255 : (byte)sum;
                }
    }

    /// <summary>Image.blend(degenerate, image, factor), in place into <paramref name="image"/>: PIL computes
    /// d + factor * (i - d) in float and truncates, clamping only when the factor extrapolates.</summary>
    static void Blend(ReadOnlySpan<byte> degenerate, Span<byte> image, float factor)
    {
        bool interpolates = factor >= 0 && factor <= 1;
        for (int i = 0; i < image.Length; i++)
        {
            if ((i & 3) == 3) continue;
            float v = degenerate[i] + factor * (image[i] - degenerate[i]);
            image[i] = interpolates ? (byte)v : v <= 0 ? (byte)0 : v >= 255 ? (byte)255 : (byte)v;
        }
    }

    /// <summary>Image.rotate(degrees) without expand: the inverse matrix about the centre, entries rounded to 15
    /// decimals as PIL rounds them.</summary>
    internal static double[] RotationMatrix(double degrees, int width, int height)
    {
        double angle = -(((degrees % 360.0) + 360.0) % 360.0) * Math.PI / 180.0;
        double cos = Math.Round(Math.Cos(angle), 15), sin = Math.Round(Math.Sin(angle), 15);
        double cx = width / 2.0, cy = height / 2.0;
        return [cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy];
    }

    /// <summary>Image.transform(size, AFFINE, matrix, BICUBIC, fillcolor=Fill): each output pixel centre maps through
    /// the matrix into the input; outside it the fill colour, inside PIL's transform bicubic (a = -1, edge pixels
    /// repeated, truncated to 8 bits).</summary>
    internal static void Affine(ReadOnlySpan<byte> rgba, int width, int height, double[] m, Span<byte> output)
    {
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int o = 4 * (y * width + x);
                double xin = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2];
                double yin = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5];
                output[o + 3] = 255;
                if (xin < 0 || xin >= width || yin < 0 || yin >= height)
                {
                    Fill.CopyTo(output.Slice(o, 3));
                    continue;
                }
                for (int b = 0; b < 3; b++) output[o + b] = BicubicSample(rgba, width, height, xin - 0.5, yin - 0.5, b);
            }
    }

    static byte BicubicSample(ReadOnlySpan<byte> rgba, int width, int height, double xin, double yin, int band)
    {
        int x = (int)Math.Floor(xin), y = (int)Math.Floor(yin);
        double dx = xin - x, dy = yin - y;
        int c0 = Column(x - 1), c1 = Column(x), c2 = Column(x + 1), c3 = Column(x + 2);
        int Column(int k) => 4 * Math.Clamp(k, 0, width - 1) + band;
        double v1 = Row(rgba, 4 * width * Math.Clamp(y - 1, 0, height - 1), c0, c1, c2, c3, dx);
        double v2 = y >= 0 && y < height ? Row(rgba, 4 * width * y, c0, c1, c2, c3, dx) : v1;
        double v3 = y + 1 >= 0 && y + 1 < height ? Row(rgba, 4 * width * (y + 1), c0, c1, c2, c3, dx) : v2;
        double v4 = y + 2 >= 0 && y + 2 < height ? Row(rgba, 4 * width * (y + 2), c0, c1, c2, c3, dx) : v3;
        double v = Cubic(v1, v2, v3, v4, dy);
        return v <= 0 ? (byte)0 : v >= 255 ? (byte)255 : (byte)v;
    }

    static double Row(ReadOnlySpan<byte> rgba, int start, int c0, int c1, int c2, int c3, double dx) =>
        Cubic(rgba[start + c0], rgba[start + c1], rgba[start + c2], rgba[start + c3], dx);

    static double Cubic(double v1, double v2, double v3, double v4, double d)
    {
        double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
        return p1 + d * (p2 + d * (p3 + d * p4));
    }
}
