// PIL opens a GIF as its first frame in mode "P": pixels the frame leaves uncovered, and its transparent pixels, hold
// the transparency index (index 0 when there is none), so convert("RGB") gives them that palette colour. ImageSharp
// leaves them transparent (0, 0, 0, 0), or black outside the frame, hence this pass over the decoded pixels. The same
// walk over the blocks tells whether the first frame's data is all there (PIL refuses it otherwise; ImageSharp does not).
using System.Buffers.Binary;

namespace ChineseClip.Model.Imaging;

internal static class GifFirstFrame
{
    readonly record struct Layout(int PaletteStart, int PaletteLength, int? Transparency, int Left, int Top, int Right, int Bottom, bool Complete);

    /// <summary>False when the file ends before the first frame's image data does.</summary>
    public static bool IsComplete(ReadOnlySpan<byte> gif) => Read(gif) is { Complete: true };

    /// <summary>Gives the pixels of <paramref name="rgba"/> (4 bytes each, already decoded) that PIL takes from the
    /// palette rather than the frame their palette colour. A header it cannot follow leaves them as they are.</summary>
    public static void FillAsPil(ReadOnlySpan<byte> gif, Span<byte> rgba, int width, int height)
    {
        if (Read(gif) is not { } layout || layout.PaletteLength == 0) return; // no palette: PIL says "L"; rare, left
        int index = layout.Transparency ?? 0;
        ReadOnlySpan<byte> palette = gif.Slice(layout.PaletteStart, layout.PaletteLength);
        // PIL's palette past the colours the file gives is the gray ramp.
        ReadOnlySpan<byte> fill = index * 3 + 3 <= palette.Length ? palette.Slice(index * 3, 3) : [(byte)index, (byte)index, (byte)index];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                Span<byte> pixel = rgba.Slice((y * width + x) * 4, 4);
                bool uncovered = x < layout.Left || x >= layout.Right || y < layout.Top || y >= layout.Bottom;
                if (uncovered || (layout.Transparency != null && pixel[3] == 0))
                {
                    fill.CopyTo(pixel);
                    pixel[3] = 255;
                }
            }
    }

    // Header, global palette, extensions (the graphic control one holds the transparency), the first image descriptor
    // with its local palette, then the image data as sub-blocks up to an empty one.
    static Layout? Read(ReadOnlySpan<byte> gif)
    {
        if (gif.Length < 13) return null;
        int paletteStart = 0, paletteLength = 0, pos = 13;
        if ((gif[10] & 0x80) != 0)
        {
            (paletteStart, paletteLength) = (pos, 3 << ((gif[10] & 7) + 1));
            pos += paletteLength;
        }
        int? transparency = null;
        while (pos + 2 < gif.Length && gif[pos] == 0x21)
        {
            bool control = gif[pos + 1] == 0xF9;
            pos += 2;
            if (control && gif[pos] >= 4 && pos + 4 < gif.Length && (gif[pos + 1] & 1) != 0) transparency = gif[pos + 4];
            pos = SkipSubBlocks(gif, pos);
        }
        if (pos + 10 > gif.Length || gif[pos] != 0x2C) return null;
        int left = BinaryPrimitives.ReadUInt16LittleEndian(gif[(pos + 1)..]), top = BinaryPrimitives.ReadUInt16LittleEndian(gif[(pos + 3)..]);
        int right = left + BinaryPrimitives.ReadUInt16LittleEndian(gif[(pos + 5)..]), bottom = top + BinaryPrimitives.ReadUInt16LittleEndian(gif[(pos + 7)..]);
        int flags = gif[pos + 9];
        pos += 10;
        if ((flags & 0x80) != 0)
        {
            (paletteStart, paletteLength) = (pos, 3 << ((flags & 7) + 1));
            pos += paletteLength;
        }
        if (paletteStart + paletteLength > gif.Length) return null;
        bool complete = pos < gif.Length && SkipSubBlocks(gif, pos + 1) <= gif.Length; // after the LZW code size
        return new Layout(paletteStart, paletteLength, transparency, left, top, right, bottom, complete);
    }

    // The position after the empty sub-block that ends a run, or past the end of the data when it is cut short.
    static int SkipSubBlocks(ReadOnlySpan<byte> gif, int pos)
    {
        while (pos < gif.Length && gif[pos] != 0) pos += gif[pos] + 1;
        return pos + 1;
    }
}
