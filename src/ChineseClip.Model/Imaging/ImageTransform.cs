// The official evaluation transform: PIL Resize((R, R), BICUBIC) on the image as PIL opens it (a squash, no crop),
// then convert("RGB"), ToTensor and Normalize with the CLIP mean/std. Decoding is ImageSharp's; the resize follows
// PIL's per-mode rules: palette and bilevel images are resized with NEAREST, RGBA/LA premultiplied by alpha.
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace ChineseClip.Model.Imaging;

/// <summary>An image that cannot be used: unknown format, corrupt or truncated data, or too many pixels.</summary>
public sealed class InvalidImageException(string message, Exception? inner = null) : Exception(message, inner);

public sealed class ImageTransform
{
    /// <summary>PIL's default decompression-bomb limit (Image.MAX_IMAGE_PIXELS), about 89.5 megapixels.</summary>
    public const long DefaultMaxPixels = 89_478_485;

    public static readonly float[] Mean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] Std = [0.26862954f, 0.26130258f, 0.27577711f];

    // The layouts PIL opens images in, as far as the resize cares.
    enum PilMode { L, Rgb, Rgba, Palette }

    public ImageTransform(int resolution, long maxPixels = DefaultMaxPixels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(resolution, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPixels, 1);
        Resolution = resolution;
        MaxPixels = maxPixels;
    }

    public int Resolution { get; }
    public long MaxPixels { get; }

    /// <summary>3*R*R normalised floats, channel-major (CHW).</summary>
    public float[] ToPixels(ReadOnlySpan<byte> encoded)
    {
        var chw = new float[3 * Resolution * Resolution];
        ToPixels(encoded, chw);
        return chw;
    }

    public void ToPixels(ReadOnlySpan<byte> encoded, Span<float> chw) => Normalize(ToRgbBytes(encoded), chw);

    /// <summary>[N, 3, R, R] float32 pixels of several encoded images.</summary>
    public Tensor ToTensor(IReadOnlyList<byte[]> encoded)
    {
        int size = 3 * Resolution * Resolution;
        var data = new float[encoded.Count * size];
        Parallel.For(0, encoded.Count, i => ToPixels(encoded[i], data.AsSpan(i * size, size)));
        return tensor(data, [encoded.Count, 3, Resolution, Resolution]);
    }

    /// <summary>ToTensor + Normalize in float32, as torchvision computes them: (v / 255 - mean) / std.</summary>
    public static void Normalize(ReadOnlySpan<byte> hwcRgb, Span<float> chw)
    {
        int plane = hwcRgb.Length / 3;
        if (chw.Length != hwcRgb.Length) throw new ArgumentException("chw must hold 3 floats per pixel", nameof(chw));
        for (int c = 0; c < 3; c++)
        {
            float mean = Mean[c], std = Std[c];
            Span<float> output = chw.Slice(c * plane, plane);
            for (int i = 0; i < plane; i++) output[i] = (hwcRgb[i * 3 + c] / 255f - mean) / std;
        }
    }

    /// <summary>The resized RGB pixels (R x R, HWC, 8-bit) before normalisation.</summary>
    public byte[] ToRgbBytes(ReadOnlySpan<byte> encoded)
    {
        IImageInfo info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(encoded.ToArray(), out format); // 2.1 has no span overload of Identify
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException or InvalidOperationException)
        {
            throw new InvalidImageException($"unreadable image header: {e.Message}", e);
        }
        if (info is null || format is null) throw new InvalidImageException("not a recognised image format (JPEG, PNG, WebP, BMP or GIF)");
        long pixels = (long)info.Width * info.Height;
        if (pixels > MaxPixels)
            throw new InvalidImageException($"image of {info.Width}x{info.Height} = {pixels} pixels exceeds the limit of {MaxPixels} pixels");
        if (format is JpegFormat && !JpegIsComplete(encoded)) throw new InvalidImageException("truncated JPEG (no end-of-image marker after the last scan)");

        PilMode mode = ModeOf(info, format);
        try
        {
            return mode switch
            {
                PilMode.L => GrayToRgb(Resize(Decode<L8>(encoded), 1, PilResample.Bicubic)),
                PilMode.Rgb => Resize(Decode<Rgb24>(encoded), 3, PilResample.Bicubic),
                PilMode.Palette => Resize(Decode<Rgb24>(encoded), 3, PilResample.Nearest),
                _ => ResizeRgba(Decode<Rgba32>(encoded)),
            };
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException or InvalidOperationException
            or ArgumentException or IndexOutOfRangeException)
        {
            throw new InvalidImageException($"corrupt {format.Name} image: {e.Message}", e);
        }
    }

    static PilMode ModeOf(IImageInfo info, IImageFormat format)
    {
        if (format is PngFormat)
        {
            var png = info.Metadata.GetPngMetadata();
            return png.ColorType switch
            {
                PngColorType.Palette => PilMode.Palette,
                PngColorType.Grayscale => png.BitDepth == PngBitDepth.Bit1 ? PilMode.Palette : PilMode.L,
                PngColorType.GrayscaleWithAlpha or PngColorType.RgbWithAlpha => PilMode.Rgba,
                _ => PilMode.Rgb,
            };
        }
        if (format is GifFormat) return PilMode.Palette;
        if (format is BmpFormat) return (int)info.Metadata.GetBmpMetadata().BitsPerPixel <= 8 ? PilMode.Palette : PilMode.Rgb;
        if (format is JpegFormat) return info.Metadata.GetJpegMetadata().ColorType == JpegColorType.Luminance ? PilMode.L : PilMode.Rgb;
        // WebP and anything else: RGBA when the pixels carry alpha, else RGB.
        return info.PixelType?.AlphaRepresentation is PixelAlphaRepresentation.Unassociated or PixelAlphaRepresentation.Associated
            ? PilMode.Rgba : PilMode.Rgb;
    }

    readonly record struct Raster(byte[] Bytes, int Width, int Height);

    static Raster Decode<TPixel>(ReadOnlySpan<byte> encoded) where TPixel : unmanaged, IPixel<TPixel>
    {
        using var image = Image.Load<TPixel>(encoded); // GIF: the root frame is the first frame
        var pixels = new TPixel[image.Width * image.Height];
        image.CopyPixelDataTo(pixels);
        return new Raster(MemoryMarshal.AsBytes(pixels.AsSpan()).ToArray(), image.Width, image.Height);
    }

    delegate byte[] Resampler(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight);

    byte[] Resize(Raster r, int channels, Resampler resample) =>
        r.Width == Resolution && r.Height == Resolution ? r.Bytes : resample(r.Bytes, r.Width, r.Height, channels, Resolution, Resolution);

    static byte[] GrayToRgb(byte[] gray)
    {
        var rgb = new byte[gray.Length * 3];
        for (int i = 0; i < gray.Length; i++) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = gray[i];
        return rgb;
    }

    // PIL resizes RGBA (and LA) premultiplied: RGBA -> RGBa, resize, RGBa -> RGBA; convert("RGB") then drops alpha.
    byte[] ResizeRgba(Raster r)
    {
        byte[] rgba = r.Bytes;
        if (r.Width != Resolution || r.Height != Resolution)
        {
            var premultiplied = new byte[rgba.Length];
            for (int i = 0; i < rgba.Length; i += 4)
            {
                int alpha = rgba[i + 3];
                for (int c = 0; c < 3; c++)
                {
                    int t = rgba[i + c] * alpha + 128;
                    premultiplied[i + c] = (byte)(((t >> 8) + t) >> 8);
                }
                premultiplied[i + 3] = (byte)alpha;
            }
            rgba = PilResample.Bicubic(premultiplied, r.Width, r.Height, 4, Resolution, Resolution);
            for (int i = 0; i < rgba.Length; i += 4)
            {
                int alpha = rgba[i + 3];
                if (alpha == 0 || alpha == 255) continue;
                for (int c = 0; c < 3; c++) rgba[i + c] = (byte)Math.Min(255, 255 * rgba[i + c] / alpha);
            }
        }
        var rgb = new byte[rgba.Length / 4 * 3];
        for (int i = 0, j = 0; i < rgba.Length; i += 4, j += 3)
        {
            rgb[j] = rgba[i];
            rgb[j + 1] = rgba[i + 1];
            rgb[j + 2] = rgba[i + 2];
        }
        return rgb;
    }

    // Entropy-coded JPEG data cannot contain FF D9 (0xFF is stuffed), so a complete file has an end-of-image marker
    // after its last start-of-scan; a truncated file does not (an EXIF thumbnail's markers come before the scans).
    static bool JpegIsComplete(ReadOnlySpan<byte> data)
    {
        int lastScan = data.LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xDA]);
        int lastEnd = data.LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xD9]);
        return lastEnd > lastScan;
    }
}
