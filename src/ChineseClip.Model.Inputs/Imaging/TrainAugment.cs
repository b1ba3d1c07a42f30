// The official training augmentation (`use_augment`, cn_clip/training/data.py _build_transform): timm's
// create_transform(is_training=True, scale=(0.9, 1.0), color_jitter=None, auto_augment='original',
// interpolation='bicubic'), which is RandomResizedCrop(R, scale 0.9-1.0, ratio 3/4-4/3, bicubic), a horizontal flip
// with p 0.5, convert("RGB"), AutoAugment with the "original" ImageNet policy (AutoAugment.cs), then the usual
// ToTensor + Normalize. timm adds no colour jitter when AutoAugment is on, and no RandomErasing (re_prob 0).
//
// Our datasets and shards keep each image already squashed to R x R by the eval transform, not the original. The crop
// is drawn exactly as torchvision draws it, in the original image's pixel grid (its width and height are passed in),
// and that same region is cut from the squashed copy and resized back to R x R with PIL's bicubic. So the crop
// geometry (area share, aspect ratio, position) has the official distribution; what differs is that the region is
// resampled from the R x R copy instead of the full-resolution original (a little softer when the crop is upscaled,
// and crop edges rounded to whole pixels of the R x R grid). Where the original size is unknown (packed shards keep
// only R x R pixels) the crop is drawn in the R x R grid: the area share is the same, but the aspect limits then apply
// to the squashed image instead of the original.
//
// Random numbers come from a counter-based generator keyed by (seed, epoch, sample key), not from a running stream,
// so a sample's augmentation does not depend on the rank that loads it, on batch order or on where a run resumed.
using System.Buffers;

namespace ChineseClip.Model.Imaging;

public sealed class TrainAugment
{
    public const double MinScale = 0.9, MaxScale = 1.0;
    public const double MinRatio = 3.0 / 4.0, MaxRatio = 4.0 / 3.0;
    public const double FlipProbability = 0.5;

    public TrainAugment(int resolution, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(resolution, 1);
        Resolution = resolution;
        Seed = seed;
    }

    public int Resolution { get; }
    public long Seed { get; }

    /// <summary>Augments one training sample. <paramref name="rgb"/> and <paramref name="output"/> are R x R x 3 bytes
    /// (HWC RGB, the eval resize); <paramref name="sourceWidth"/> x <paramref name="sourceHeight"/> is the image's
    /// size before that resize, or R x R when unknown. The result depends only on (seed, epoch, sampleKey).</summary>
    public void Apply(ReadOnlySpan<byte> rgb, int sourceWidth, int sourceHeight, int epoch, long sampleKey, Span<byte> output)
    {
        int r = Resolution, pixels = r * r;
        if (rgb.Length != 3 * pixels || output.Length != 3 * pixels) throw new ArgumentException($"pixels must be {r} x {r} x 3 bytes");
        ArgumentOutOfRangeException.ThrowIfLessThan(sourceWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sourceHeight, 1);
        var random = new AugmentRandom(Seed, epoch, sampleKey);
        byte[] rented = ArrayPool<byte>.Shared.Rent(8 * pixels);
        try
        {
            Span<byte> image = rented.AsSpan(0, 4 * pixels), scratch = rented.AsSpan(4 * pixels, 4 * pixels);
            var crop = CropBox(ref random, sourceWidth, sourceHeight, r);
            ResizedCrop(rgb, r, crop, image, scratch);
            if (random.NextDouble() < FlipProbability) Mirror(image, r, r);
            AutoAugment.Apply(ref random, image, r, r, scratch);
            for (int i = 0, j = 0; i < output.Length; i += 3, j += 4)
            {
                output[i] = image[j];
                output[i + 1] = image[j + 1];
                output[i + 2] = image[j + 2];
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>A crop rectangle in pixels of the R x R grid.</summary>
    internal readonly record struct Box(int X, int Y, int Width, int Height);

    /// <summary>torchvision's RandomResizedCrop.get_params (as timm's RandomResizedCropAndInterpolation) on a
    /// width x height image: ten tries of area share U(0.9, 1) and log-uniform aspect ratio, then the centred
    /// fallback; the box found is then mapped onto the R x R grid.</summary>
    internal static Box CropBox(ref AugmentRandom random, int width, int height, int r)
    {
        var (x, y, w, h) = CropInSource(ref random, width, height);
        int x0 = (int)Math.Round((double)x * r / width), x1 = (int)Math.Round((double)(x + w) * r / width);
        int y0 = (int)Math.Round((double)y * r / height), y1 = (int)Math.Round((double)(y + h) * r / height);
        x1 = Math.Clamp(x1, x0 + 1, r);
        y1 = Math.Clamp(y1, y0 + 1, r);
        x0 = Math.Min(x0, x1 - 1);
        y0 = Math.Min(y0, y1 - 1);
        return new Box(x0, y0, x1 - x0, y1 - y0);
    }

    internal static (int X, int Y, int Width, int Height) CropInSource(ref AugmentRandom random, int width, int height)
    {
        double area = (double)width * height;
        double logMin = Math.Log(MinRatio), logMax = Math.Log(MaxRatio);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * random.Uniform(MinScale, MaxScale);
            double ratio = Math.Exp(random.Uniform(logMin, logMax));
            // Python's round() rounds halves to even, as Math.Round does by default.
            int w = (int)Math.Round(Math.Sqrt(target * ratio));
            int h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w <= width && h <= height)
            {
                int top = random.NextInt(height - h + 1);
                int left = random.NextInt(width - w + 1);
                return (left, top, w, h);
            }
        }
        double inRatio = (double)width / height;
        int fw = width, fh = height;
        if (inRatio < MinRatio) fh = (int)Math.Round(fw / MinRatio);
        else if (inRatio > MaxRatio) fw = (int)Math.Round(fh * MaxRatio);
        return ((width - fw) / 2, (height - fh) / 2, fw, fh);
    }

    // F.resized_crop on a PIL image: crop, then resize with BICUBIC (PIL's resize arithmetic, PilResample).
    static void ResizedCrop(ReadOnlySpan<byte> rgb, int r, Box box, Span<byte> output, Span<byte> scratch)
    {
        Span<byte> crop = scratch[..(4 * box.Width * box.Height)];
        for (int y = 0; y < box.Height; y++)
            for (int x = 0; x < box.Width; x++)
            {
                int s = 3 * ((box.Y + y) * r + box.X + x), d = 4 * (y * box.Width + x);
                crop[d] = rgb[s];
                crop[d + 1] = rgb[s + 1];
                crop[d + 2] = rgb[s + 2];
                crop[d + 3] = 255;
            }
        PilResample.Bicubic(crop, box.Width, box.Height, output, r, r);
    }

    /// <summary>Image.transpose(FLIP_LEFT_RIGHT) of 4-byte pixels, in place.</summary>
    internal static void Mirror(Span<byte> rgba, int width, int height)
    {
        Span<uint> pixels = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(rgba[..(4 * width * height)]);
        for (int y = 0; y < height; y++) pixels.Slice(y * width, width).Reverse();
    }
}

/// <summary>SplitMix64 over a state derived from (seed, epoch, key): the same numbers on every machine and run.</summary>
internal struct AugmentRandom
{
    ulong _state;

    public AugmentRandom(long seed, int epoch, long key)
    {
        _state = Mix(Mix(Mix((ulong)seed) ^ (uint)epoch) ^ (ulong)key);
    }

    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong state = _state;
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(state);
    }

    /// <summary>Uniform in [0, 1), 53 bits like Python's random.random().</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public double Uniform(double low, double high) => low + (high - low) * NextDouble();

    /// <summary>Uniform in 0 .. count-1 (Lemire's multiply-shift; the bias is below 2^-32).</summary>
    public int NextInt(int count) => (int)(((NextUInt64() >> 32) * (ulong)count) >> 32);
}
