using ChineseClip.Model.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing.Processors.Quantization;
using Xunit.Abstractions;

namespace ChineseClip.Model.Tests.Imaging;

public class ImageTransformTests(ITestOutputHelper output)
{
    static readonly ImageTransform Transform = new(64);

    static Dictionary<long, byte[]> FixtureImages() =>
        File.ReadLines(SharedFiles.Path("fixtures", "official-tiny", "test_imgs.tsv"))
            .Select(l => l.Split('\t'))
            .ToDictionary(p => long.Parse(p[0]), p => Convert.FromBase64String(p[1].Replace('-', '+').Replace('_', '/')));

    static Dictionary<long, float[]> OfficialPixels()
    {
        using var pixels = FixtureParityTests.LoadSafetensor(SharedFiles.Path("fixtures", "official-tiny", "ref_pixels.safetensors"), "pixels", out long[] ids);
        return ids.Select((id, i) => (id, pixels[i].data<float>().ToArray())).ToDictionary(x => x.id, x => x.Item2);
    }

    static double MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Theory]
    [InlineData(1002, 1e-6)] // PNG RGB 64x64: no resize, lossless
    [InlineData(1005, 1e-6)] // PNG palette 64x64: no resize, lossless
    [InlineData(1003, 1e-6)] // PNG gray 97x211: PIL's fixed-point bicubic, reproduced exactly
    [InlineData(1004, 1e-6)] // PNG RGBA 500x120: premultiplied resize, reproduced exactly
    [InlineData(1001, 0.08)] // JPEG 320x240: ImageSharp's decoder is not libjpeg-turbo (chroma upsampling): 5 levels
    [InlineData(1006, 0.02)] // JPEG 1024x768: 1 level
    public void Pixels_match_the_official_transform(long imageId, double bound)
    {
        float[] ours = Transform.ToPixels(FixtureImages()[imageId]);
        double max = MaxDifference(ours, OfficialPixels()[imageId]);
        output.WriteLine($"image {imageId}: max |difference| {max:G4} (normalised units; one 8-bit level is about 0.0146)");
        Assert.True(max <= bound, $"image {imageId}: max difference {max}");
    }

    // pil_cases.tsv (made by make_pil_cases.py with Pillow 9.4): name, image, PIL's RGB at R = 8, at R = 17.
    static string[][] PilCases() =>
        File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Imaging", "pil_cases.tsv")).Select(l => l.Split('\t')).ToArray();

    public static TheoryData<string> PilCaseNames => new(PilCases().Select(c => c[0]));

    [Theory]
    [MemberData(nameof(PilCaseNames))]
    public void Every_mode_pil_distinguishes_resizes_to_pils_bytes_exactly(string name)
    {
        string[] fields = PilCases().Single(c => c[0] == name);
        byte[] image = Convert.FromBase64String(fields[1]);
        Assert.Equal(Convert.FromBase64String(fields[2]), new ImageTransform(8).ToRgbBytes(image));
        Assert.Equal(Convert.FromBase64String(fields[3]), new ImageTransform(17).ToRgbBytes(image));
    }

    static Image<Rgb24> Synthetic(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)(x * 7), (byte)(y * 5), (byte)((x ^ y) * 3));
        return image;
    }

    static byte[] Encode(Image image, IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    [Fact]
    public void Lossless_webp_and_24_bit_bmp_give_the_pixels_of_the_same_png()
    {
        using var image = Synthetic(80, 48);
        float[] png = Transform.ToPixels(Encode(image, new PngEncoder()));
        Assert.Equal(png, Transform.ToPixels(Encode(image, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless })));
        Assert.Equal(png, Transform.ToPixels(Encode(image, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 })));
    }

    [Fact]
    public void A_gif_gives_the_pixels_of_its_first_frame_as_a_palette_png()
    {
        Color[] colors = Enumerable.Range(0, 16).Select(i => Color.FromRgb((byte)(i * 16), (byte)(255 - i * 9), (byte)(i * i))).ToArray();
        var quantizer = new PaletteQuantizer(colors, new QuantizerOptions { Dither = null });
        using var first = new Image<Rgb24>(80, 48);
        for (int y = 0; y < first.Height; y++)
            for (int x = 0; x < first.Width; x++) first[x, y] = colors[(x / 3 + y / 2) % 16].ToPixel<Rgb24>();
        using var animated = first.Clone();
        using var second = new Image<Rgb24>(80, 48, colors[5].ToPixel<Rgb24>());
        animated.Frames.AddFrame(second.Frames.RootFrame);

        byte[] png = Encode(first, new PngEncoder { ColorType = PngColorType.Palette, Quantizer = quantizer });
        byte[] gif = Encode(animated, new GifEncoder { Quantizer = quantizer, ColorTableMode = GifColorTableMode.Global });
        Assert.Equal(Transform.ToPixels(png), Transform.ToPixels(gif));
    }

    [Fact]
    public void Gray_and_alpha_images_become_three_equal_or_alpha_free_channels()
    {
        using var gray = new Image<L8>(10, 10, new L8(77));
        byte[] rgb = new ImageTransform(10).ToRgbBytes(Encode(gray, new PngEncoder()));
        Assert.All(rgb, v => Assert.Equal(77, v));
        using var transparent = new Image<Rgba32>(10, 10, new Rgba32(10, 20, 30, 0));
        Assert.Equal(new byte[] { 10, 20, 30 }, new ImageTransform(10).ToRgbBytes(Encode(transparent, new PngEncoder()))[..3]);
    }

    [Fact]
    public void A_truncated_jpeg_is_refused()
    {
        byte[] jpeg = FixtureImages()[1006];
        var e = Assert.Throws<InvalidImageException>(() => Transform.ToPixels(jpeg.AsSpan(0, jpeg.Length / 2)));
        Assert.Contains("truncated", e.Message);
    }

    public static TheoryData<string> LosslessFormats => new("png", "gif", "webp", "bmp");

    static IImageEncoder EncoderFor(string format) => format switch
    {
        "png" => new PngEncoder(),
        "gif" => new GifEncoder(),
        "webp" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        _ => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 },
    };

    // ImageSharp would decode these with the missing pixels black; PIL refuses them, and so do we.
    [Theory]
    [MemberData(nameof(LosslessFormats))]
    public void An_image_cut_short_is_refused_as_truncated(string format)
    {
        using var image = Synthetic(300, 200);
        byte[] data = Encode(image, EncoderFor(format));
        Assert.Equal(64 * 64 * 3, Transform.ToRgbBytes(data).Length);
        var e = Assert.Throws<InvalidImageException>(() => Transform.ToRgbBytes(data.AsSpan(0, data.Length * 2 / 3)));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Random_bytes_are_refused_as_an_unknown_format()
    {
        var bytes = new byte[500];
        new Random(3).NextBytes(bytes);
        var e = Assert.Throws<InvalidImageException>(() => Transform.ToPixels(bytes));
        Assert.Contains("not a recognised image format", e.Message);
    }

    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
        }
        return ~crc;
    }

    // Headers that declare 30000 x 30000 pixels, with no pixel data at all behind them.
    static byte[] HeaderOnly(string format)
    {
        if (format == "bmp")
        {
            byte[] header = Encode(new Image<Rgb24>(1, 1), new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 })[..54];
            BitConverter.GetBytes(30000).CopyTo(header, 18);
            BitConverter.GetBytes(30000).CopyTo(header, 22);
            return header;
        }
        var png = new List<byte>([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] data)
        {
            png.AddRange(BitConverter.GetBytes(data.Length).Reverse());
            byte[] typed = [.. type.Select(c => (byte)c), .. data];
            png.AddRange(typed);
            png.AddRange(BitConverter.GetBytes(Crc32(typed)).Reverse());
        }
        Chunk("IHDR", [0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 2, 0, 0, 0]); // 30000 x 30000, 8-bit RGB
        Chunk("IEND", []);
        return [.. png];
    }

    [Theory]
    [InlineData("png")]
    [InlineData("bmp")]
    public void Images_over_the_pixel_limit_are_refused_before_their_pixels_are_decoded(string format)
    {
        var e = Assert.Throws<InvalidImageException>(() => Transform.ToPixels(HeaderOnly(format)));
        Assert.Equal("image of 30000x30000 = 900000000 pixels exceeds the limit of 89478485 pixels", e.Message);
    }

    [Fact]
    public void The_pixel_limit_is_an_option()
    {
        var small = new ImageTransform(new ImageTransformOptions(64, MaxPixels: 97 * 211 - 1));
        var e = Assert.Throws<InvalidImageException>(() => small.ToPixels(FixtureImages()[1003]));
        Assert.Contains("97x211", e.Message);
        Assert.Equal(64 * 64 * 3, new ImageTransform(new ImageTransformOptions(64, MaxPixels: 97 * 211)).ToPixels(FixtureImages()[1003]).Length);
    }

    [Fact]
    public void A_batch_tensor_stacks_the_images_in_order()
    {
        var images = FixtureImages();
        using var batch = Transform.ToTensor([images[1002], images[1005]]);
        Assert.Equal(new long[] { 2, 3, 64, 64 }, batch.shape);
        Assert.Equal(Transform.ToPixels(images[1005]), batch[1].data<float>().ToArray());
    }

    [Fact]
    public void Normalize_turns_hwc_bytes_into_chw_floats_as_torchvision_does()
    {
        byte[] rgb = [0, 128, 255, 10, 20, 30];
        var chw = new float[6];
        ImageTransform.Normalize(rgb, chw);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 2; i++)
                Assert.Equal((rgb[i * 3 + c] / 255f - ImageTransform.Mean[c]) / ImageTransform.Std[c], chw[c * 2 + i]);
    }
}
