using ChineseClip.Model.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
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

    static Image<Rgb24> Synthetic(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)(x * 7), (byte)(y * 5), (byte)((x ^ y) * 3));
        return image;
    }

    static byte[] Encode(Image image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
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
    public void A_gif_gives_its_first_frame_resized_as_a_palette_image()
    {
        using var first = new Image<Rgb24>(64, 64, new Rgb24(200, 10, 10));
        using var second = new Image<Rgb24>(64, 64, new Rgb24(10, 10, 200));
        first.Frames.AddFrame(second.Frames.RootFrame);
        byte[] rgb = Transform.ToRgbBytes(Encode(first, new GifEncoder()));
        Assert.Equal(64 * 64 * 3, rgb.Length);
        Assert.True(rgb[0] > 150 && rgb[2] < 60, $"first pixel {rgb[0]},{rgb[1]},{rgb[2]} is not the first frame's red");
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

    [Fact]
    public void Random_bytes_are_refused_as_an_unknown_format()
    {
        var bytes = new byte[500];
        new Random(3).NextBytes(bytes);
        var e = Assert.Throws<InvalidImageException>(() => Transform.ToPixels(bytes));
        Assert.Contains("not a recognised image format", e.Message);
    }

    [Fact]
    public void A_truncated_png_is_refused()
    {
        byte[] png = FixtureImages()[1003];
        Assert.Throws<InvalidImageException>(() => Transform.ToPixels(png.AsSpan(0, png.Length * 2 / 3)));
    }

    [Fact]
    public void Images_over_the_pixel_limit_are_refused_before_their_pixels_are_decoded()
    {
        // A BMP header that declares 30000 x 30000 pixels, with no pixel data at all behind it.
        byte[] header = Encode(new Image<Rgb24>(1, 1), new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 })[..54];
        BitConverter.GetBytes(30000).CopyTo(header, 18);
        BitConverter.GetBytes(30000).CopyTo(header, 22);
        var e = Assert.Throws<InvalidImageException>(() => Transform.ToPixels(header));
        Assert.Equal("image of 30000x30000 = 900000000 pixels exceeds the limit of 89478485 pixels", e.Message);
        var small = new ImageTransform(64, maxPixels: 1000);
        Assert.Throws<InvalidImageException>(() => small.ToPixels(FixtureImages()[1003]));
    }

    [Fact]
    public void A_batch_tensor_stacks_the_images_in_order()
    {
        var images = FixtureImages();
        using var batch = Transform.ToTensor([images[1002], images[1005]]);
        Assert.Equal(new long[] { 2, 3, 64, 64 }, batch.shape);
        Assert.Equal(Transform.ToPixels(images[1005]), batch[1].data<float>().ToArray());
    }
}
