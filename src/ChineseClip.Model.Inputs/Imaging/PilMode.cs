// Which mode PIL (Pillow 9) opens an image in, as far as Image.resize and convert("RGB") care. Pillow picks the
// resampling from the mode: "P" and "1" resize with NEAREST, "RGBA" and "LA" premultiplied by alpha, "I" (16-bit gray)
// in double precision and clamped to 0..255 by convert("RGB"), the rest with fixed-point BICUBIC.
using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;

namespace ChineseClip.Model.Imaging;

internal enum PilMode
{
    /// <summary>"L" or "RGB": bicubic on the 8-bit bands.</summary>
    Bands,
    /// <summary>"RGBA" or "LA": bicubic on the premultiplied bands.</summary>
    Alpha,
    /// <summary>"P" or "1": nearest.</summary>
    Palette,
    /// <summary>"I": 16-bit gray, bicubic in double precision, then clamped to 0..255.</summary>
    Int32,
}

internal static class PilModes
{
    /// <summary>The mode, and whether the samples are 16-bit (PIL keeps the high byte of 16-bit RGB(A) and LA).</summary>
    public static (PilMode Mode, bool Sixteen) Of(IImageInfo info, IImageFormat format, ReadOnlySpan<byte> encoded)
    {
        if (format is PngFormat)
        {
            var png = info.Metadata.GetPngMetadata();
            bool sixteen = png.BitDepth == PngBitDepth.Bit16;
            return png.ColorType switch
            {
                PngColorType.Palette => (PilMode.Palette, false),
                PngColorType.Grayscale => png.BitDepth switch
                {
                    PngBitDepth.Bit1 => (PilMode.Palette, false),
                    PngBitDepth.Bit16 => (PilMode.Int32, true),
                    _ => (PilMode.Bands, false),
                },
                PngColorType.GrayscaleWithAlpha or PngColorType.RgbWithAlpha => (PilMode.Alpha, sixteen),
                _ => (PilMode.Bands, sixteen),
            };
        }
        if (format is GifFormat) return (PilMode.Palette, false); // the first frame, with its palette
        if (format is BmpFormat) return (OfBmp(encoded), false);
        // JPEG: "L" or "RGB" ("CMYK" too: ImageSharp converts it to RGB before the resize, PIL after).
        if (format is JpegFormat) return (PilMode.Bands, false);
        // WebP (and the rarer formats ImageSharp reads) open as "RGBA" when they have alpha, else "RGB". An opaque
        // image gives the same bytes either way (premultiplying by 255 changes nothing, and a resized alpha of 255
        // stays 255), so alpha it is.
        return (PilMode.Alpha, false);
    }

    // BmpImagePlugin: up to 8 bits per pixel is "P", unless the palette is the gray ramp (entry i = (i, i, i)), which
    // makes it "L"; 32 bits with an alpha bitfield is "RGBA"; everything else "RGB". Two-colour black and white is
    // "1", which resizes like "P". Reads the header that Identify has already validated.
    static PilMode OfBmp(ReadOnlySpan<byte> bmp)
    {
        if (bmp.Length < 30) return PilMode.Bands;
        int headerSize = BinaryPrimitives.ReadInt32LittleEndian(bmp[14..]);
        bool core = headerSize == 12;
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(bmp[(core ? 24 : 28)..]);
        if (bits > 8)
        {
            const int bitfields = 3;
            bool alpha = !core && bits == 32 && headerSize >= 56 && bmp.Length >= 70
                && BinaryPrimitives.ReadInt32LittleEndian(bmp[30..]) == bitfields
                && BinaryPrimitives.ReadUInt32LittleEndian(bmp[66..]) != 0;
            return alpha ? PilMode.Alpha : PilMode.Bands;
        }
        int colors = core || bmp.Length < 50 ? 0 : BinaryPrimitives.ReadInt32LittleEndian(bmp[46..]);
        if (colors == 0) colors = 1 << bits;
        if (colors <= 2 || colors > 256) return PilMode.Palette; // "P", or "1" (also NEAREST)
        int entry = core ? 3 : 4;
        int paletteStart = 14 + headerSize;
        if (bits != 8 || bmp.Length < paletteStart + colors * entry) return PilMode.Palette;
        for (int i = 0; i < colors; i++)
        {
            var rgb = bmp.Slice(paletteStart + i * entry, 3);
            if (rgb[0] != i || rgb[1] != i || rgb[2] != i) return PilMode.Palette;
        }
        return PilMode.Bands;
    }
}
