using System.Buffers.Binary;
using ChineseClip.Model.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Pbm;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>Encoded images of every format ImageSharp writes, each truncated, bit-flipped, with extreme values in its
/// header and with huge dimensions in its header (where the format has a known place for them), through the image
/// transform (the exact and the libjpeg-turbo scaled path) and the header read the datasets use.</summary>
public sealed class ImageTarget : FuzzTarget
{
    static readonly (string Name, IImageEncoder Encoder)[] Formats =
    [
        ("png", new PngEncoder()), ("jpeg", new JpegEncoder { Quality = 80 }), ("bmp", new BmpEncoder()), ("gif", new GifEncoder()),
        ("webp-lossy", new WebpEncoder { FileFormat = WebpFileFormatType.Lossy }), ("webp-lossless", new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }),
        ("tiff", new TiffEncoder()), ("tga", new TgaEncoder()), ("pbm", new PbmEncoder()),
    ];

    readonly ImageTransform _exact = new(32);
    readonly ImageTransform _fast = new(32, scaledJpegDecode: true);

    public override string Name => "images";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        foreach (var (name, encoder) in Formats)
        {
            byte[] seed = Encode(encoder, random);
            yield return new FuzzCase($"{name}: unchanged", seed);
            for (int i = 0; i < 5; i++)
            {
                int keep = i == 0 ? seed.Length / 2 : random.Next(seed.Length);
                yield return new FuzzCase($"{name}: truncated to {keep} of {seed.Length}", seed[..keep]);
            }
            for (int i = 0; i < 12; i++)
            {
                var (what, bytes) = Mutate.Bytes(seed, random);
                yield return new FuzzCase($"{name}: {what}", bytes);
            }
            for (int i = 0; i < 4; i++)
            {
                var b = (byte[])seed.Clone();
                int at = random.Next(Math.Min(64, b.Length - 4));
                uint value = Mutate.Extremes[random.Next(Mutate.Extremes.Length)];
                if (random.Next(2) == 0) BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), value);
                else BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), (ushort)value);
                yield return new FuzzCase($"{name}: header 0x{value:x} at {at}", b);
            }
            foreach (var (what, bytes) in HugeDimensions(name, seed)) yield return new FuzzCase($"{name}: {what}", bytes);
        }
        yield return new FuzzCase("no bytes", []);
        yield return new FuzzCase("text", "not an image\n"u8.ToArray());
    }

    static byte[] Encode(IImageEncoder encoder, Random random)
    {
        using var image = new Image<Rgba32>(45, 31);
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
                image[x, y] = new Rgba32((byte)random.Next(256), (byte)(x * 5), (byte)(y * 8), (byte)(255 - x));
        var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>Width and height fields set to huge or negative values where the format keeps them.</summary>
    static IEnumerable<(string, byte[])> HugeDimensions(string format, byte[] seed)
    {
        byte[] With(Action<byte[]> patch)
        {
            var b = (byte[])seed.Clone();
            patch(b);
            return b;
        }
        switch (format)
        {
            case "png": // IHDR: width, height (big-endian) at 16, its CRC at 29
                foreach (uint size in new uint[] { 100_000, 0x7fffffff, 0 })
                {
                    yield return ($"IHDR {size} x {size}", With(b =>
                    {
                        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), size);
                        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), size);
                        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(29), System.IO.Hashing.Crc32.HashToUInt32(b.AsSpan(12, 17)));
                    }));
                }
                break;
            case "jpeg": // SOFn: FF C0..C2, length, precision, height, width (big-endian)
                int sof = Enumerable.Range(2, seed.Length - 10).First(i => seed[i] == 0xff && seed[i + 1] is 0xc0 or 0xc1 or 0xc2);
                foreach (ushort size in new ushort[] { 65535, 0 })
                    yield return ($"SOF {size} x {size}", With(b =>
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(sof + 5), size);
                        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(sof + 7), size);
                    }));
                break;
            case "bmp": // BITMAPINFOHEADER: width, height (little-endian int32) at 18 and 22
                foreach (int size in new[] { 100_000, int.MaxValue, int.MinValue, -31 })
                    yield return ($"{size} x {size}", With(b =>
                    {
                        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), size);
                        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), size);
                    }));
                break;
            case "gif": // logical screen 6..9, first image descriptor (0x2C) + 5..8 (little-endian uint16)
                int descriptor = Array.IndexOf(seed, (byte)0x2c, 13);
                yield return ("screen 65535 x 65535", With(b => { b[6] = b[7] = b[8] = b[9] = 0xff; }));
                yield return ("frame 65535 x 65535", With(b => { for (int i = 5; i < 9; i++) b[descriptor + i] = 0xff; }));
                break;
            case "tga": // width, height (little-endian uint16) at 12 and 14
                yield return ("65535 x 65535", With(b => { b[12] = b[13] = b[14] = b[15] = 0xff; }));
                break;
        }
    }

    public override void Run(FuzzCase c)
    {
        ImageTransform.SourceSize(c.Input);
        _exact.ToPixels(c.Input);
        _fast.ToPixels(c.Input);
    }

    public override bool IsRefusal(Exception e) => e is InvalidImageException;
}
