// The official evaluation transform: PIL Resize((R, R), BICUBIC) on the image as PIL opens it (a squash, no crop),
// then convert("RGB"), ToTensor and Normalize with the CLIP mean/std. Decoding is ImageSharp's; the resize follows
// PIL's per-mode rules (PilMode.cs) with PIL's own arithmetic (PilResample.cs).
// Opt-in fast mode (ScaledJpegDecode): a JPEG at least twice the resolution on both sides is decoded by libjpeg-turbo
// scaled by 1/2, 1/4 or 1/8 (as Pillow's Image.draft does), then resized with the same bicubic. Its pixels are close
// to the exact path's, not equal. CMYK/YCCK JPEGs, smaller JPEGs and other formats take the exact path.
using System.Buffers;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;

namespace ChineseClip.Model.Imaging;

/// <param name="Resolution">Output side R: images become R x R.</param>
/// <param name="MaxPixels">Images with more pixels (width x height, read from the header) are refused undecoded.</param>
/// <param name="ScaledJpegDecode">Decode large JPEGs at reduced scale with libjpeg-turbo (needs libturbojpeg0): much
/// faster, pixels close to but not equal to the official ones. Off by default.</param>
public sealed record ImageTransformOptions(int Resolution, long MaxPixels = ImageTransform.DefaultMaxPixels, bool ScaledJpegDecode = false);

public sealed class ImageTransform
{
    /// <summary>PIL's decompression-bomb threshold (Image.MAX_IMAGE_PIXELS, which PIL warns above), about 89.5
    /// megapixels: 358 MB once decoded to 4 bytes per pixel.</summary>
    public const long DefaultMaxPixels = 89_478_485;

    public static readonly float[] Mean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] Std = [0.26862954f, 0.26130258f, 0.27577711f];

    // (v / 255 - mean) / std for every byte value and channel, in float32 as torchvision computes it.
    static readonly float[] NormalizedValues = BuildNormalizedValues();

    /// <exception cref="TurboJpegMissingException">scaledJpegDecode is set and libturbojpeg.so.0 cannot be loaded.</exception>
    public ImageTransform(int resolution, long maxPixels = DefaultMaxPixels, bool scaledJpegDecode = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(resolution, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPixels, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxPixels, int.MaxValue / 4); // 4 bytes a pixel in one buffer
        Resolution = resolution;
        MaxPixels = maxPixels;
        if (scaledJpegDecode) TurboJpeg.EnsureLoaded(); // fails here, never by falling back to the exact path
        ScaledJpegDecode = scaledJpegDecode;
    }

    public ImageTransform(ImageTransformOptions options) : this(options.Resolution, options.MaxPixels, options.ScaledJpegDecode) { }

    public int Resolution { get; }
    public long MaxPixels { get; }
    public bool ScaledJpegDecode { get; }

    int RgbLength => 3 * Resolution * Resolution;

    /// <summary>3*R*R normalised floats, channel-major (CHW).</summary>
    public float[] ToPixels(ReadOnlySpan<byte> encoded)
    {
        var chw = new float[RgbLength];
        ToPixels(encoded, chw);
        return chw;
    }

    public void ToPixels(ReadOnlySpan<byte> encoded, Span<float> chw)
    {
        if (chw.Length != RgbLength) throw new ArgumentException($"chw must hold 3*{Resolution}*{Resolution} floats", nameof(chw));
        byte[] rgb = ArrayPool<byte>.Shared.Rent(RgbLength);
        try
        {
            ResizeToRgb(encoded, rgb.AsSpan(0, RgbLength));
            Normalize(rgb.AsSpan(0, RgbLength), chw);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rgb);
        }
    }

    /// <summary>ToTensor + Normalize in float32, as torchvision computes them: (v / 255 - mean) / std.</summary>
    public static void Normalize(ReadOnlySpan<byte> hwcRgb, Span<float> chw)
    {
        if (chw.Length != hwcRgb.Length || hwcRgb.Length % 3 != 0)
            throw new ArgumentException("chw must hold 3 floats per pixel", nameof(chw));
        int plane = hwcRgb.Length / 3;
        ReadOnlySpan<float> table = NormalizedValues;
        for (int c = 0; c < 3; c++)
        {
            ReadOnlySpan<float> values = table.Slice(c * 256, 256);
            Span<float> output = chw.Slice(c * plane, plane);
            for (int i = 0, j = c; i < output.Length; i++, j += 3) output[i] = values[hwcRgb[j]];
        }
    }

    /// <summary>The resized RGB pixels (R x R, HWC, 8-bit) before normalisation.</summary>
    public byte[] ToRgbBytes(ReadOnlySpan<byte> encoded)
    {
        var rgb = new byte[RgbLength];
        ResizeToRgb(encoded, rgb);
        return rgb;
    }

    /// <summary>Width and height of an encoded image, read from its header (what the image was before the resize).</summary>
    public static (int Width, int Height) SourceSize(ReadOnlySpan<byte> encoded)
    {
        var (info, _) = DecodedImage.Identify(encoded);
        return (info.Width, info.Height);
    }

    /// <summary>ToRgbBytes, and the reduction the JPEG decoder applied (1: decoded at full size).</summary>
    internal byte[] ToRgbBytes(ReadOnlySpan<byte> encoded, out int jpegScale)
    {
        var rgb = new byte[RgbLength];
        jpegScale = ResizeToRgb(encoded, rgb);
        return rgb;
    }

    // Returns the JPEG decode scale: 2, 4 or 8 on the fast path, else 1.
    int ResizeToRgb(ReadOnlySpan<byte> encoded, Span<byte> rgb)
    {
        (IImageInfo info, IImageFormat format) = DecodedImage.Identify(encoded);
        long pixels = (long)info.Width * info.Height;
        if (pixels > MaxPixels)
            throw new InvalidImageException($"image of {info.Width}x{info.Height} = {pixels} pixels exceeds the limit of {MaxPixels} pixels");
        if (Truncation.Problem(format, encoded) is { } problem) throw new InvalidImageException(problem);

        if (ScaledJpegDecode && format is JpegFormat && TurboJpeg.ScaleFor(info.Width, info.Height, Resolution) is > 1 and int scale)
        {
            using ScaledJpeg? scaled = TurboJpeg.Decode(encoded, scale);
            if (scaled != null)
            {
                Resize(PilMode.Bands, scaled.Bytes, scaled.Width, scaled.Height, rgb);
                return scaled.Scale;
            }
        }
        (PilMode mode, bool sixteen) = PilModes.Of(info, format, encoded);
        if (mode == PilMode.Int32)
        {
            ResizeInt32(encoded, format, rgb);
            return 1;
        }
        using var image = sixteen ? DecodedImage.LoadHighBytes(encoded, format) : DecodedImage.Load(encoded, format);
        if (format is GifFormat) GifFirstFrame.FillAsPil(encoded, image.Bytes, image.Width, image.Height);
        Resize(mode, image.Bytes, image.Width, image.Height, rgb);
        return 1;
    }

    // Image.resize then convert("RGB"). Same size: PIL copies the image, whatever its mode.
    void Resize(PilMode mode, Span<byte> rgba, int width, int height, Span<byte> rgb)
    {
        int r = Resolution;
        if (width == r && height == r)
        {
            DropAlpha(rgba, rgb);
            return;
        }
        byte[] resized = ArrayPool<byte>.Shared.Rent(r * r * 4);
        try
        {
            Span<byte> output = resized.AsSpan(0, r * r * 4);
            if (mode == PilMode.Palette)
                PilResample.Nearest(MemoryMarshal.Cast<byte, uint>(rgba), width, height, MemoryMarshal.Cast<byte, uint>(output), r, r);
            else if (mode == PilMode.Alpha)
                ResizePremultiplied(rgba, width, height, output, r);
            else
                PilResample.Bicubic(rgba, width, height, output, r, r);
            DropAlpha(output, rgb);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(resized);
        }
    }

    // PIL resizes RGBA (and LA) as RGBa: premultiplied with MULDIV255 rounding (in place here: the decoded pixels are
    // ours), then divided back, truncating.
    static void ResizePremultiplied(Span<byte> rgba, int width, int height, Span<byte> output, int r)
    {
        for (int i = 0; i < rgba.Length; i += 4)
        {
            int alpha = rgba[i + 3];
            if (alpha == 255) continue;
            for (int c = 0; c < 3; c++)
            {
                int t = rgba[i + c] * alpha + 128;
                rgba[i + c] = (byte)(((t >> 8) + t) >> 8);
            }
        }
        PilResample.Bicubic(rgba, width, height, output, r, r);
        for (int i = 0; i < output.Length; i += 4)
        {
            int alpha = output[i + 3];
            if (alpha == 0 || alpha == 255) continue;
            for (int c = 0; c < 3; c++) output[i + c] = (byte)Math.Min(255, 255 * output[i + c] / alpha);
        }
    }

    // Pillow 9 opens 16-bit gray PNGs as "I": the resize runs in double precision on the raw 16-bit values, and
    // convert("RGB") clamps them to 0..255 (so most such images come out nearly white, in the official pipeline too).
    void ResizeInt32(ReadOnlySpan<byte> encoded, IImageFormat format, Span<byte> rgb)
    {
        int r = Resolution;
        (int[] values, int width, int height) = DecodedImage.LoadGray16(encoded, format);
        if (width != r || height != r) values = PilResample.BicubicInt32(values, width, height, r, r);
        for (int i = 0; i < values.Length; i++) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = (byte)Math.Clamp(values[i], 0, 255);
    }

    static void DropAlpha(ReadOnlySpan<byte> rgba, Span<byte> rgb)
    {
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            rgb[j] = rgba[i];
            rgb[j + 1] = rgba[i + 1];
            rgb[j + 2] = rgba[i + 2];
        }
    }

    static float[] BuildNormalizedValues()
    {
        var table = new float[3 * 256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) table[c * 256 + v] = (v / 255f - Mean[c]) / Std[c];
        return table;
    }
}
