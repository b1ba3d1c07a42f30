using ChineseClip.Model.Imaging;

namespace ChineseClip.Model.Tests.Imaging;

public class TrainAugmentTests
{
    // A deterministic image with every value in use and no symmetry: 4-byte pixels, fourth byte 255.
    static byte[] Textured(int width, int height, int salt = 0)
    {
        var rgba = new byte[4 * width * height];
        var random = new Random(1234 + salt);
        for (int i = 0; i < rgba.Length; i++) rgba[i] = (i & 3) == 3 ? (byte)255 : (byte)random.Next(256);
        return rgba;
    }

    static byte[] ToRgb(byte[] rgba) => rgba.Where((_, i) => (i & 3) != 3).ToArray();

    static byte[] Run(AugmentOp op, double argument, byte[] rgba, int width, int height)
    {
        var image = (byte[])rgba.Clone();
        AutoAugment.Run(op, argument, image, width, height, new byte[image.Length]);
        return image;
    }

    static IEnumerable<byte> Band(byte[] rgba, int band) => rgba.Where((_, i) => (i & 3) == band);

    [Fact]
    public void The_same_seed_epoch_and_sample_give_the_same_pixels_and_another_epoch_other_pixels()
    {
        const int r = 32;
        var rgb = ToRgb(Textured(r, r));
        var augment = new TrainAugment(r, seed: 123);
        byte[] Augmented(TrainAugment a, int epoch, long key)
        {
            var output = new byte[rgb.Length];
            a.Apply(rgb, 640, 480, epoch, key, output);
            return output;
        }
        int differing = 0;
        for (long key = 0; key < 8; key++)
        {
            Assert.Equal(Augmented(augment, 0, key), Augmented(new TrainAugment(r, seed: 123), 0, key));
            if (!Augmented(augment, 0, key).SequenceEqual(Augmented(augment, 1, key))) differing++;
        }
        Assert.True(differing >= 7, $"only {differing} of 8 samples changed between epochs");
        Assert.NotEqual(Augmented(augment, 0, 0), Augmented(new TrainAugment(r, seed: 124), 0, 0));
    }

    [Theory]
    [InlineData(640, 480)]
    [InlineData(100, 300)]
    [InlineData(224, 224)]
    [InlineData(1000, 120)]
    public void The_crop_keeps_90_to_100_percent_of_the_area_within_the_ratio_limits_or_is_the_centred_fallback_and_maps_onto_the_squashed_copy(int width, int height)
    {
        for (long key = 0; key < 500; key++)
        {
            var random = new AugmentRandom(7, 0, key);
            var again = random;
            var (x, y, w, h) = TrainAugment.CropInSource(ref random, width, height);
            Assert.InRange(x, 0, width - w);
            Assert.InRange(y, 0, height - h);
            double share = (double)w * h / ((double)width * height), ratio = (double)w / h;
            bool sampled = share >= 0.9 - 2.0 * (w + h) / (width * (double)height) && share <= 1.0 && ratio > 0.74 && ratio < 1.34;
            bool fallback = x == (width - w) / 2 && y == (height - h) / 2 && (w == width || h == height);
            Assert.True(sampled || fallback, $"{width}x{height}: crop {w}x{h} at ({x}, {y})");

            // The same region, on the squashed 224 x 224 copy (edges rounded to whole pixels).
            var box = TrainAugment.CropBox(ref again, width, height, 224);
            Assert.True(box.X >= 0 && box.Y >= 0 && box.X + box.Width <= 224 && box.Y + box.Height <= 224);
            Assert.InRange(box.X - 224.0 * x / width, -0.5, 0.5);
            Assert.InRange(box.Width - 224.0 * w / width, -1, 1);
            Assert.InRange(box.Height - 224.0 * h / height, -1, 1);
        }
    }

    [Fact]
    public void The_flip_is_an_exact_mirror()
    {
        const int w = 5, h = 3;
        var image = Textured(w, h);
        var mirrored = (byte[])image.Clone();
        TrainAugment.Mirror(mirrored, w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                Assert.Equal(image.AsSpan(4 * (y * w + w - 1 - x), 4).ToArray(), mirrored.AsSpan(4 * (y * w + x), 4).ToArray());
        TrainAugment.Mirror(mirrored, w, h);
        Assert.Equal(image, mirrored);
    }

    [Fact]
    public void The_policy_is_timms_original_imagenet_policy_with_its_level_arguments()
    {
        Assert.Equal(25, AutoAugment.OriginalPolicy.Length);
        Assert.All(AutoAugment.OriginalPolicy, sub => Assert.Equal(2, sub.Length));
        Assert.Equal(Enum.GetValues<AugmentOp>().Order(), AutoAugment.OriginalPolicy.SelectMany(s => s).Select(s => s.Op).Distinct().Order());
        var random = new AugmentRandom(1, 2, 3);
        Assert.Equal(7, AutoAugment.Argument(ref random, AugmentOp.PosterizeOriginal, 8)); // int(0.8 * 4) + 4
        Assert.Equal(128, AutoAugment.Argument(ref random, AugmentOp.Solarize, 5));
        Assert.Equal(1.0, AutoAugment.Argument(ref random, AugmentOp.Color, 5));
        Assert.Equal(27.0, Math.Abs(AutoAugment.Argument(ref random, AugmentOp.Rotate, 9)), 12);
        Assert.Equal(0.15, Math.Abs(AutoAugment.Argument(ref random, AugmentOp.ShearX, 5)), 12);
        var signs = Enumerable.Range(0, 200).Select(_ => Math.Sign(AutoAugment.Argument(ref random, AugmentOp.Rotate, 3))).ToList();
        Assert.InRange(signs.Count(s => s < 0), 70, 130);
    }

    [Theory]
    [InlineData("PosterizeOriginal", 8)]
    [InlineData("Solarize", 256)]
    [InlineData("Color", 1.0)]
    [InlineData("Contrast", 1.0)]
    [InlineData("Sharpness", 1.0)]
    [InlineData("Rotate", 0.0)]
    [InlineData("ShearX", 0.0)]
    public void An_operation_at_its_identity_argument_returns_the_input(string op, double argument)
    {
        var image = Textured(13, 11);
        Assert.Equal(image, Run(Enum.Parse<AugmentOp>(op), argument, image, 13, 11));
    }

    [Fact]
    public void Posterize_keeps_the_high_bits_and_solarize_inverts_from_the_threshold()
    {
        var image = Textured(16, 16);
        var posterized = Run(AugmentOp.PosterizeOriginal, 4, image, 16, 16);
        for (int i = 0; i < image.Length; i++)
            if ((i & 3) != 3) Assert.Equal(image[i] & 0xF0, posterized[i]);
        var solarized = Run(AugmentOp.Solarize, 128, image, 16, 16);
        for (int i = 0; i < image.Length; i++)
            if ((i & 3) != 3) Assert.Equal(image[i] < 128 ? image[i] : 255 - image[i], solarized[i]);
        Assert.Equal(Run(AugmentOp.Invert, 0, image, 16, 16), Run(AugmentOp.Solarize, 0, image, 16, 16));
        Assert.Equal(image, Run(AugmentOp.Invert, 0, Run(AugmentOp.Invert, 0, image, 16, 16), 16, 16));
    }

    [Fact]
    public void Autocontrast_stretches_each_band_to_0_255_and_equalize_keeps_the_order_of_values()
    {
        // Values only in 60..180: autocontrast must reach 0 and 255 in every band, keeping the order of values.
        var narrow = Textured(20, 20).Select((v, i) => (i & 3) == 3 ? v : (byte)(60 + v * 120 / 255)).ToArray();
        var stretched = Run(AugmentOp.AutoContrast, 0, narrow, 20, 20);
        var equalized = Run(AugmentOp.Equalize, 0, narrow, 20, 20);
        for (int b = 0; b < 3; b++)
        {
            Assert.Equal(0, Band(stretched, b).Min());
            Assert.Equal(255, Band(stretched, b).Max());
            foreach (var result in new[] { stretched, equalized })
            {
                var pairs = Band(narrow, b).Zip(Band(result, b)).OrderBy(p => p.First).ToList();
                for (int i = 1; i < pairs.Count; i++) Assert.True(pairs[i].Second >= pairs[i - 1].Second, "the mapping must not reorder values");
            }
            Assert.True(Band(equalized, b).Max() - Band(equalized, b).Min() > 200, "equalize spreads the values");
        }
        var flat = Enumerable.Range(0, 4 * 9).Select(i => (byte)((i & 3) == 3 ? 255 : 77)).ToArray();
        Assert.Equal(flat, Run(AugmentOp.AutoContrast, 0, flat, 3, 3));
        Assert.Equal(flat, Run(AugmentOp.Equalize, 0, flat, 3, 3));
    }

    [Fact]
    public void Colour_zero_is_gray_contrast_zero_is_the_mean_gray_and_sharpness_keeps_the_border()
    {
        var image = Textured(10, 8);
        var gray = Run(AugmentOp.Color, 0.0, image, 10, 8);
        for (int i = 0; i < gray.Length; i += 4)
        {
            Assert.Equal(gray[i], gray[i + 1]);
            Assert.Equal(gray[i], gray[i + 2]);
            Assert.Equal((image[i] * 19595 + image[i + 1] * 38470 + image[i + 2] * 7471 + 0x8000) >> 16, gray[i]);
        }
        var flat = Run(AugmentOp.Contrast, 0.0, image, 10, 8);
        Assert.Single(flat.Where((_, i) => (i & 3) != 3).Distinct());
        Assert.Equal((int)(gray.Where((_, i) => (i & 3) == 0).Average(v => (double)v) + 0.5), flat[0]);
        var sharpened = Run(AugmentOp.Sharpness, 1.9, image, 10, 8);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 10; x++)
                if (x == 0 || y == 0 || x == 9 || y == 7)
                    Assert.Equal(image.AsSpan(4 * (y * 10 + x), 4).ToArray(), sharpened.AsSpan(4 * (y * 10 + x), 4).ToArray());
        Assert.NotEqual(image, sharpened);
    }

    [Fact]
    public void Rotating_a_quarter_turn_moves_pixels_exactly_and_rotate_and_shear_fill_uncovered_corners()
    {
        const int n = 9;
        var image = Textured(n, n);
        var quarter = Run(AugmentOp.Rotate, 90, image, n, n);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) // PIL rotates counter-clockwise: output (x, y) comes from input (n-1-y, x)
                Assert.Equal(image.AsSpan(4 * (x * n + n - 1 - y), 3).ToArray(), quarter.AsSpan(4 * (y * n + x), 3).ToArray());

        var big = Textured(40, 40);
        var rotated = Run(AugmentOp.Rotate, 27, big, 40, 40);
        Assert.Equal(AutoAugment.Fill, rotated.AsSpan(0, 3).ToArray());
        var sheared = Run(AugmentOp.ShearX, 0.3, big, 40, 40);
        Assert.Equal(AutoAugment.Fill, sheared.AsSpan(4 * (39 * 40 + 39), 3).ToArray());
        Assert.NotEqual(AutoAugment.Fill, sheared.AsSpan(0, 3).ToArray());
    }
}
