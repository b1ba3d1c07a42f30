// ImageSharp decodes most truncated files without complaint (the missing pixels come out gray or black); PIL refuses
// them ("image file is truncated"). These checks read only the container structure, not the pixels.
using System.Buffers.Binary;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;

namespace ChineseClip.Model.Imaging;

internal static class Truncation
{
    /// <summary>Why the file is cut short, or null when its structure is complete (or not checked).</summary>
    public static string? Problem(IImageFormat format, ReadOnlySpan<byte> data) => format switch
    {
        JpegFormat when !JpegIsComplete(data) => "truncated JPEG (no end-of-image marker after the last scan)",
        PngFormat when !PngIsComplete(data) => "truncated PNG (the file ends inside its image data)",
        GifFormat when !GifFirstFrame.IsComplete(data) => "truncated GIF (the file ends inside the first frame)",
        WebpFormat when !WebpIsComplete(data) => "truncated WebP (shorter than its RIFF header says)",
        BmpFormat when !BmpIsComplete(data) => "truncated BMP (shorter than its pixel rows)",
        _ => null,
    };

    // Entropy-coded JPEG data cannot contain FF D9 (0xFF is stuffed), so a complete file has an end-of-image marker
    // after its last start-of-scan; a truncated file does not (an EXIF thumbnail's markers come before the scans).
    static bool JpegIsComplete(ReadOnlySpan<byte> data)
    {
        int lastScan = data.LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xDA]);
        int lastEnd = data.LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xD9]);
        return lastEnd > lastScan;
    }

    // Chunks are length, type, data, CRC. A file cut inside an IDAT chunk, or before any, misses image data; one cut
    // in a chunk after the image data (a missing IEND) is fine, as it is for PIL.
    static bool PngIsComplete(ReadOnlySpan<byte> data)
    {
        bool seenImageData = false;
        for (int pos = 8; pos < data.Length;)
        {
            if (pos + 8 > data.Length) return seenImageData;
            long end = pos + 12L + BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            bool imageData = data.Slice(pos + 4, 4).SequenceEqual("IDAT"u8);
            if (end > data.Length) return seenImageData && !imageData;
            if (data.Slice(pos + 4, 4).SequenceEqual("IEND"u8)) break;
            seenImageData |= imageData;
            pos = (int)end;
        }
        return seenImageData;
    }

    static bool WebpIsComplete(ReadOnlySpan<byte> data) =>
        data.Length >= 12 && data.Length >= 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);

    // Uncompressed and bitfield BMPs hold rows padded to 4 bytes from the pixel-data offset on; RLE ones are not checked.
    static bool BmpIsComplete(ReadOnlySpan<byte> data)
    {
        if (data.Length < 30) return false;
        int headerSize = BinaryPrimitives.ReadInt32LittleEndian(data[14..]);
        long width, height;
        int bits, compression;
        if (headerSize == 12)
        {
            (width, height) = (BinaryPrimitives.ReadUInt16LittleEndian(data[18..]), BinaryPrimitives.ReadUInt16LittleEndian(data[20..]));
            (bits, compression) = (BinaryPrimitives.ReadUInt16LittleEndian(data[24..]), 0);
        }
        else
        {
            if (data.Length < 34) return false;
            (width, height) = (BinaryPrimitives.ReadInt32LittleEndian(data[18..]), Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(data[22..])));
            (bits, compression) = (BinaryPrimitives.ReadUInt16LittleEndian(data[28..]), BinaryPrimitives.ReadInt32LittleEndian(data[30..]));
        }
        if (compression is not (0 or 3)) return true;
        long stride = (width * bits + 31) / 32 * 4, lastRow = (width * bits + 7) / 8; // PIL does without the last padding
        return height == 0 || BinaryPrimitives.ReadUInt32LittleEndian(data[10..]) + stride * (height - 1) + lastRow <= data.Length;
    }
}
