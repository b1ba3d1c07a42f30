using ChineseClip.Model.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace ChineseClip.Model.Tests.Imaging;

// One class, so its tests (one of which renames the library) run one after another.
public class ScaledJpegTests(ITestOutputHelper output)
{
    // A photo-like test card: smooth waves and gradients, sharp-edged discs, and a little deterministic noise.
    static Image<Rgb24> TestCard(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        var random = new Random(7);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                double wave = Math.Sin(x / 37.0) * Math.Cos(y / 53.0);
                bool disc = ((x % 400) - 200) * ((x % 400) - 200) + ((y % 300) - 150) * ((y % 300) - 150) < 90 * 90;
                int noise = random.Next(-6, 7);
                image[x, y] = new Rgb24(
                    (byte)Math.Clamp(128 + 100 * wave + noise, 0, 255),
                    (byte)Math.Clamp(255.0 * x / width + noise, 0, 255),
                    (byte)Math.Clamp((disc ? 220 : 40) + 30.0 * y / height + noise, 0, 255));
            }
        return image;
    }

    static byte[] Encode(Image image, JpegColorType color = JpegColorType.YCbCrRatio420)
    {
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new JpegEncoder { Quality = 90, ColorType = color });
        return stream.ToArray();
    }

    static byte[] Jpeg(int width, int height, JpegColorType color = JpegColorType.YCbCrRatio420)
    {
        using var image = TestCard(width, height);
        return Encode(image, color);
    }

    static (double Mean, int Max) Difference(byte[] a, byte[] b)
    {
        Assert.Equal(a.Length, b.Length);
        long sum = 0;
        int max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            int d = Math.Abs(a[i] - b[i]);
            sum += d;
            max = Math.Max(max, d);
        }
        return ((double)sum / a.Length, max);
    }

    [Theory]
    [InlineData(224, 4, 1.0, 12)] // 1600x1200 -> 400x300 -> 224
    [InlineData(128, 8, 1.5, 16)] // 1600x1200 -> 200x150 -> 128
    public void A_large_jpeg_decodes_at_reduced_scale_close_to_the_exact_path(int resolution, int expectedScale, double meanBound, int maxBound)
    {
        byte[] jpeg = Jpeg(1600, 1200);
        byte[] exact = new ImageTransform(resolution).ToRgbBytes(jpeg);
        byte[] fast = new ImageTransform(resolution, scaledJpegDecode: true).ToRgbBytes(jpeg, out int scale);

        Assert.Equal(expectedScale, scale);
        (double mean, int max) = Difference(exact, fast);
        output.WriteLine($"R={resolution}, scale 1/{scale}: mean |difference| {mean:F3} levels, max {max}");
        Assert.True(mean <= meanBound && max <= maxBound, $"mean {mean}, max {max}");
    }

    [Fact]
    public void A_large_gray_jpeg_takes_the_fast_path_as_gray()
    {
        byte[] jpeg = Jpeg(1600, 1200, JpegColorType.Luminance);
        byte[] exact = new ImageTransform(224).ToRgbBytes(jpeg);
        byte[] fast = new ImageTransform(224, scaledJpegDecode: true).ToRgbBytes(jpeg, out int scale);

        Assert.Equal(4, scale);
        for (int i = 0; i < fast.Length; i += 3) Assert.True(fast[i] == fast[i + 1] && fast[i] == fast[i + 2]);
        (double mean, int max) = Difference(exact, fast);
        output.WriteLine($"gray: mean |difference| {mean:F3} levels, max {max}");
        Assert.True(mean <= 1.0 && max <= 12, $"mean {mean}, max {max}");
    }

    // A 64x64 CMYK JPEG (Adobe marker, no transform) made by Pillow 9.4: gradients in C, M and Y, K = 40, quality 90.
    const string CmykJpeg = "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwADAgIDAgIDAwMDBAMDBAUIBQUEBAUKBwcGCAwKDAwLCgsLDQ4SEA0OEQ4LCxAWEBETFBUVFQwPFxgWFBgSFBUU/8AAFAgAQABABEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwD9KP8AhJf9qv0o8S/xV+aX/CN/7NfdFH/CS/7VeVeJf46P+Eb/ANmij/hJf9qvKfEv8dH/AAjf+zRR/wAJL/tV5V4l/jo/4Rv/AGaKP+El/wBqvKvEv8dH/CN/7NFH/CS/7VeU+Jf46P8AhG/9mij/AISX/aryrxL/AB0f8I3/ALNFH/CS/wC1XlXiTq1H/CN/7NFeVf8ACSf7df0q+Jf4q9V/4Rv/AGKKP+Ek/wBuvKvEv8dH/CN/7FFH/CSf7deU+Jf46P8AhG/9iij/AIST/bryrxL/AB0f8I3/ALFFH/CSf7deVeJf46P+Eb/2KKP+Ek/268p8S/x0f8I3/sUUf8JJ/t15V4l/jo/4Rv8A2KKP+Ek/268q8SdWo/4Rv/Yoryn/AIST/br+lXxL/FXqv/CN/wCxRR/wkn+3XlXiX+Oj/hG/9iij/hJP9uvKfEv8dH/CN/7FFH/CSf7deVeJf46P+Eb/ANiij/hJP9uvKvEv8dH/AAjf+xRR/wAJJ/t15T4l/jo/4Rv/AGKKP+Ek/wBuvKvEv8dH/CN/7FFH/CSf7deVeJOrUf8ACN/7FFeVf8JJ/t1/Sr4l/ir1b/hG/wDYoo/4ST/bryrxL/HR/wAI3/sUUf8ACSf7deU+Jf46P+Eb/wBiij/hJP8AbryrxL/HR/wjf+xRR/wkn+3XlXiX+Oj/AIRv/Yoo/wCEk/268p8S/wAdH/CN/wCxRR/wkn+3XlXiX+Oj/hG/9iij/hJP9uvKvEnVqP8AhG/9iivKv+Ek/wBuv6VfEv8AFXqv/CN/7FFH/CSf7deVeJf46P8AhG/9iij/AIST/brynxL/AB0f8I3/ALFFH/CSf7deVeJf46P+Eb/2KKP+Ek/268q8S/x0f8I3/sUUf8JJ/t15T4l/jo/4Rv8A2KKP+Ek/268q8S/x0f8ACN/7FFH/AAkn+3XlXiTq1H/CN/7FFeU/8JJ/t1/Sr4l/ir1X/hG/9iij/hJP9uvKvEv8dH/CN/7FFH/CSf7deU+Jf46P+Eb/ANiij/hJP9uvKvEv8dH/AAjf+xRR/wAJJ/t15V4l/jo/4Rv/AGKKP+Ek/wBuvKfEv8dH/CN/7FFH/CSf7deVeJf46P8AhG/9iij/AIST/bryrxJ1aj/hG/8AYoryr/hJP9uv6VfEv8Verf8ACN/7FFH/AAkn+3XlXiX+Oj/hG/8AYoo/4ST/AG68p8S/x0f8I3/sUUf8JJ/t15V4l/jo/wCEb/2KKP8AhJP9uvKvEv8AHR/wjf8AsUUf8JJ/t15T4l/jo/4Rv/Yoo/4ST/bryrxL/HR/wjf+xRR/wkn+3XlXiTq1H/CN/wCxRXlX/CSf7Vf0q+Jf4q9V/wCEa/2aKP8AhJP9qvKvEv8AHR/wjX+zRR/wkn+1XlPiX+Oj/hGv9mij/hJP9qvKvEv8dH/CNf7NFH/CSf7VeVeJf46P+Ea/2aKP+Ek/2q8p8S/x0f8ACNf7NFH/AAkn+1XlXiX+Oj/hGv8AZoo/4ST/AGq8q8SdWo/4Rr/Zor//2Q==";

    public static TheoryData<string> ExactPathCases => new() { "small-jpeg", "large-png", "large-cmyk-jpeg" };

    [Theory]
    [MemberData(nameof(ExactPathCases))]
    public void Small_jpegs_other_formats_and_cmyk_take_the_exact_path(string name)
    {
        (byte[] encoded, int resolution) = name switch
        {
            "small-jpeg" => (Jpeg(400, 300), 224), // 400 / 224 < 2: no reduction keeps 224
            "large-cmyk-jpeg" => (Convert.FromBase64String(CmykJpeg), 8), // 1/8 would keep 8
            _ => (Png(1600, 1200), 224),
        };
        byte[] exact = new ImageTransform(resolution).ToRgbBytes(encoded);
        byte[] fast = new ImageTransform(resolution, scaledJpegDecode: true).ToRgbBytes(encoded, out int scale);

        Assert.Equal(1, scale);
        Assert.Equal(exact, fast);
    }

    static byte[] Png(int width, int height)
    {
        using var image = TestCard(width, height);
        using var stream = new MemoryStream();
        image.Save(stream, new PngEncoder());
        return stream.ToArray();
    }

    [Theory]
    [InlineData(1600, 1200, 224, 4)]
    [InlineData(1800, 1800, 224, 8)]
    [InlineData(1791, 1800, 224, 4)] // 1791 < 8 * 224
    [InlineData(448, 900, 224, 2)]
    [InlineData(447, 900, 224, 1)]
    public void The_reduction_is_the_largest_that_keeps_both_sides_at_the_resolution(int width, int height, int resolution, int scale)
    {
        Assert.Equal(scale, TurboJpeg.ScaleFor(width, height, resolution));
    }

    [Fact]
    public void The_pixel_limit_is_checked_before_decoding()
    {
        byte[] jpeg = Jpeg(1600, 1200);
        var e = Assert.Throws<InvalidImageException>(() => new ImageTransform(224, maxPixels: 1_000_000, scaledJpegDecode: true).ToRgbBytes(jpeg));
        Assert.Contains("exceeds the limit", e.Message);
    }

    [Fact]
    public void Without_the_library_the_fast_option_fails_in_one_line_naming_the_package()
    {
        string saved = TurboJpeg.LibraryName;
        TurboJpeg.LibraryName = "/nonexistent/libturbojpeg.so.0";
        try
        {
            var e = Assert.Throws<TurboJpegMissingException>(() => new ImageTransform(new ImageTransformOptions(224, ScaledJpegDecode: true)));
            output.WriteLine(e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains("apt-get install libturbojpeg0", e.Message);
            new ImageTransform(224); // the exact path needs no library
        }
        finally
        {
            TurboJpeg.LibraryName = saved;
        }
    }
}
