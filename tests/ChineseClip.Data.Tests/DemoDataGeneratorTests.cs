using System.Security.Cryptography;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;

namespace ChineseClip.Data.Tests;

public class DemoDataGeneratorTests
{
    static Dictionary<string, string> Hashes(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void Every_stage_and_split_reads_back_decodes_and_links_texts_to_its_own_images()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-demo").FullName;
        var summaries = DemoDataGenerator.Generate(dir, seed: 3, scale: 0.1);
        Assert.Equal(9, summaries.Count);
        var transform = new ImageTransform(64);
        var allIds = new HashSet<long>();
        var formats = new HashSet<byte>();
        foreach (string dataset in DemoDataGenerator.Datasets)
            foreach (string split in new[] { "train", "valid", "test" })
            {
                var errors = new List<RecordError>();
                var images = ImageTsv.Read(Path.Combine(dir, dataset, $"{split}_imgs.tsv"), errors.Add).ToList();
                var texts = TextJsonl.Read(Path.Combine(dir, dataset, $"{split}_texts.jsonl"), errors.Add).ToList();
                Assert.Empty(errors);
                Assert.NotEmpty(images);
                Assert.True(texts.Count >= images.Count);
                foreach (var image in images)
                {
                    Assert.Equal(3 * 64 * 64, transform.ToPixels(image.Bytes).Length);
                    formats.Add(image.Bytes[0]);
                    Assert.True(allIds.Add(image.ImageId), $"image id {image.ImageId} repeats");
                }
                var own = images.Select(i => i.ImageId).ToHashSet();
                foreach (var text in texts)
                {
                    Assert.True(allIds.Add(text.TextId), $"text id {text.TextId} repeats");
                    Assert.All(text.ImageIds, id => Assert.Contains(id, own));
                    Assert.False(string.IsNullOrWhiteSpace(text.Text));
                }
            }
        Assert.Contains((byte)0xFF, formats); // JPEG
        Assert.Contains((byte)0x89, formats); // PNG
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_same_seed_gives_the_same_bytes_and_another_seed_other_bytes()
    {
        string a = Directory.CreateTempSubdirectory("cnclip-demo-a").FullName;
        string b = Directory.CreateTempSubdirectory("cnclip-demo-b").FullName;
        string c = Directory.CreateTempSubdirectory("cnclip-demo-c").FullName;
        DemoDataGenerator.Generate(a, seed: 5, scale: 0.05);
        DemoDataGenerator.Generate(b, seed: 5, scale: 0.05);
        DemoDataGenerator.Generate(c, seed: 6, scale: 0.05);
        var (ha, hb) = (Hashes(a), Hashes(b));
        Assert.Equal(ha.Keys.Order(), hb.Keys.Order());
        // The cluster schedule names its folder (absolute paths, read by the coordinator), so it differs by design.
        Assert.Equal("", string.Join(", ", ha.Keys.Where(k => ha[k] != hb[k] && k != "demo-schedule.yaml")));
        Assert.Contains($"train_data: {Path.Combine(a, "stage1-muge")}\n", File.ReadAllText(Path.Combine(a, "demo-schedule.yaml")));
        Assert.NotEqual(Hashes(a)["stage1-muge/train_imgs.tsv"], Hashes(c)["stage1-muge/train_imgs.tsv"]);
        foreach (string d in new[] { a, b, c }) Directory.Delete(d, true);
    }
}
