// ImageSharp decoding as the transform needs it: the header alone first (size and format, for the pixel limit and the
// PIL mode), then the pixels as 4 bytes each (RGBA; gray repeated in R, G and B), read in place from ImageSharp's own
// buffer when it is contiguous. Whatever a decoder throws on bad data becomes an InvalidImageException.
using System.Buffers;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;

namespace ChineseClip.Model.Imaging;

internal sealed class DecodedImage : IDisposable
{
    // Contiguous pixel buffers, so the resize reads them in place; GIFs decode their first frame only.
    static readonly Configuration Decoding = BuildConfiguration();

    readonly Image<Rgba32>? _image;
    readonly Memory<Rgba32> _pixels;
    readonly byte[]? _rented;

    DecodedImage(int width, int height, Image<Rgba32>? image, Memory<Rgba32> pixels, byte[]? rented)
    {
        (Width, Height, _image, _pixels, _rented) = (width, height, image, pixels, rented);
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>Width * Height pixels of 4 bytes.</summary>
    public Span<byte> Bytes => _rented != null ? _rented.AsSpan(0, Width * Height * 4) : MemoryMarshal.AsBytes(_pixels.Span);

    public void Dispose()
    {
        _image?.Dispose();
        if (_rented != null) ArrayPool<byte>.Shared.Return(_rented);
    }

    public static unsafe (IImageInfo Info, IImageFormat Format) Identify(ReadOnlySpan<byte> encoded)
    {
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            fixed (byte* start = encoded)
            {
                using var stream = new UnmanagedMemoryStream(start, encoded.Length); // 2.1 has no span overload of Identify
                info = Image.Identify(Decoding, stream, out format);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidImageException($"unreadable image header: {e.Message}", e);
        }
        if (info is null || format is null) throw new InvalidImageException("not a recognised image format (JPEG, PNG, WebP, BMP or GIF)");
        return (info, format);
    }

    public static DecodedImage Load(ReadOnlySpan<byte> encoded, IImageFormat format)
    {
        var image = Decode<Rgba32>(encoded, format);
        if (image.DangerousTryGetSinglePixelMemory(out Memory<Rgba32> pixels))
            return new DecodedImage(image.Width, image.Height, image, pixels, null);
        using (image)
        {
            byte[] rented = ArrayPool<byte>.Shared.Rent(image.Width * image.Height * 4);
            image.CopyPixelDataTo(rented.AsSpan(0, image.Width * image.Height * 4));
            return new DecodedImage(image.Width, image.Height, null, default, rented);
        }
    }

    /// <summary>16-bit samples cut to their high byte, as PIL unpacks 16-bit RGB(A) and gray-alpha PNGs (ImageSharp
    /// would round them instead).</summary>
    public static DecodedImage LoadHighBytes(ReadOnlySpan<byte> encoded, IImageFormat format)
    {
        using var image = Decode<Rgba64>(encoded, format);
        int rowLength = image.Width * 4;
        byte[] rented = ArrayPool<byte>.Shared.Rent(rowLength * image.Height);
        for (int y = 0; y < image.Height; y++)
        {
            ReadOnlySpan<ushort> samples = MemoryMarshal.Cast<Rgba64, ushort>(image.DangerousGetPixelRowMemory(y).Span);
            Span<byte> row = rented.AsSpan(y * rowLength, rowLength);
            for (int i = 0; i < row.Length; i++) row[i] = (byte)(samples[i] >> 8);
        }
        return new DecodedImage(image.Width, image.Height, null, default, rented);
    }

    /// <summary>The raw 16-bit values of a gray image.</summary>
    public static (int[] Values, int Width, int Height) LoadGray16(ReadOnlySpan<byte> encoded, IImageFormat format)
    {
        using var image = Decode<L16>(encoded, format);
        var gray = new L16[image.Width * image.Height];
        image.CopyPixelDataTo(gray);
        return (Array.ConvertAll(gray, p => (int)p.PackedValue), image.Width, image.Height);
    }

    static Image<TPixel> Decode<TPixel>(ReadOnlySpan<byte> encoded, IImageFormat format) where TPixel : unmanaged, IPixel<TPixel>
    {
        try
        {
            return Image.Load<TPixel>(Decoding, encoded, Decoding.ImageFormatsManager.FindDecoder(format));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidImageException($"corrupt {format.Name} image: {e.Message}", e);
        }
    }

    static Configuration BuildConfiguration()
    {
        var configuration = Configuration.Default.Clone();
        configuration.PreferContiguousImageBuffers = true;
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        return configuration;
    }
}
