using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using ChineseClip.Data.Formats;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ChineseClip.Cli.Tests;

public class ConvertPrivateDataCommandTests
{
    static byte[] Png(byte shade)
    {
        using var image = new Image<Rgb24>(20, 12, new Rgb24(shade, 100, 50));
        using var s = new MemoryStream();
        image.SaveAsPng(s);
        return s.ToArray();
    }

    static byte[] Jpeg(byte shade)
    {
        using var image = new Image<Rgb24>(30, 30, new Rgb24(shade, 10, 200));
        using var s = new MemoryStream();
        image.SaveAsJpeg(s);
        return s.ToArray();
    }

    /// <summary>A deliberately messy folder: nested Chinese paths, CRLF and BOM captions, several captions per image,
    /// a duplicate image, a GBK caption, a missing caption, a zero-byte file, a truncated JPEG, a corrupt PNG.</summary>
    static string MessyFolder()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-private").FullName;
        string nested = Path.Combine(root, "商品", "鞋子");
        Directory.CreateDirectory(nested);
        void Put(string rel, byte[] bytes) => File.WriteAllBytes(Path.Combine(root, rel), bytes);
        void Caption(string rel, string text, bool bom = false) =>
            File.WriteAllBytes(Path.Combine(root, rel), [.. (bom ? new byte[] { 0xEF, 0xBB, 0xBF } : []), .. Encoding.UTF8.GetBytes(text)]);
        Put("猫.png", Png(10)); Caption("猫.txt", "一只猫\r\n橘色的猫\r\n");
        Put(Path.Combine("商品", "鞋子", "跑鞋.jpg"), Jpeg(20)); Caption(Path.Combine("商品", "鞋子", "跑鞋.txt"), "白色跑步鞋", bom: true);
        Put(Path.Combine("商品", "同一只猫.png"), Png(10)); Caption(Path.Combine("商品", "同一只猫.txt"), "一只猫\n睡觉的猫");
        Put("狗.png", Png(30)); File.WriteAllBytes(Path.Combine(root, "狗.txt"), [0xD2, 0xBB, 0xD6, 0xBB, 0xB9, 0xB7]); // "一只狗" in GBK
        Put("无描述.png", Png(40));
        Put("空.png", []); Caption("空.txt", "空文件");
        byte[] jpeg = Jpeg(50); Put("截断.jpg", jpeg[..(jpeg.Length / 2)]); Caption("截断.txt", "截断的图片");
        Put("坏.png", [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]); Caption("坏.txt", "坏图");
        Put("鸟.png", Png(60)); Caption("鸟.txt", "一只鸟");
        return root;
    }

    [Fact]
    public void A_messy_folder_converts_with_every_rejection_accounted_for()
    {
        string input = MessyFolder(), output = Path.Combine(Path.GetTempPath(), $"cnclip-private-out-{Guid.NewGuid():N}");
        var r = CliRunner.Run("convert-private-data", "--input", input, "--output", output, "--splits", "1,0,0", "--seed", "3");
        Assert.True(r.ExitCode == 0, r.Error);

        var rejects = File.ReadAllLines(Path.Combine(output, "rejects.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => Path.GetFileName(e.GetProperty("item").GetString()!), e => e.GetProperty("reason").GetString()!);
        Assert.Equal(5, rejects.Count);
        Assert.StartsWith("caption file 狗.txt is not UTF-8", rejects["狗.png"]); // named on the image it costs
        Assert.Equal("no caption file 无描述.txt", rejects["无描述.png"]);
        Assert.Equal("empty file", rejects["空.png"]);
        Assert.False(string.IsNullOrEmpty(rejects["截断.jpg"])); // cut inside its header: "unreadable image header: ..."
        Assert.True(rejects.ContainsKey("坏.png"));

        var errors = new List<RecordError>();
        var images = ImageTsv.Read(Path.Combine(output, "train_imgs.tsv"), errors.Add).ToList();
        var texts = TextJsonl.Read(Path.Combine(output, "train_texts.jsonl"), errors.Add).ToList();
        Assert.Empty(errors);
        Assert.Equal(3, images.Count); // cat (merged with its duplicate), running shoe, bird
        Assert.Equal(["一只猫", "一只鸟", "橘色的猫", "白色跑步鞋", "睡觉的猫"], texts.Select(t => t.Text).Order(StringComparer.Ordinal));
        Assert.All(texts, t => Assert.Contains(t.ImageIds.Single(), images.Select(i => i.ImageId)));
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json"))).RootElement;
        Assert.Equal(1, summary.GetProperty("duplicate_images_merged").GetInt32());
        Assert.Equal(5, summary.GetProperty("rejected").GetInt32());
        AssertCountsAddUp(summary);
        Directory.Delete(input, true);
        Directory.Delete(output, true);
    }

    [Fact]
    public void Ids_are_stable_across_runs_and_the_split_is_by_image()
    {
        string input = Directory.CreateTempSubdirectory("cnclip-private-split").FullName;
        for (int i = 0; i < 40; i++)
        {
            File.WriteAllBytes(Path.Combine(input, $"{i}.png"), Png((byte)(i * 5)));
            File.WriteAllText(Path.Combine(input, $"{i}.txt"), $"图片{i}\n第二个描述{i}");
        }
        string a = Path.Combine(input, "out-a"), b = Path.Combine(input, "out-b");
        Assert.Equal(0, CliRunner.Run("convert-private-data", "--input", input, "--output", a, "--splits", "0.5,0.25,0.25", "--seed", "1").ExitCode);
        Assert.Equal(0, CliRunner.Run("convert-private-data", "--input", input, "--output", b, "--splits", "0.5,0.25,0.25", "--seed", "1").ExitCode);
        foreach (string f in new[] { "train_imgs.tsv", "valid_texts.jsonl", "test_imgs.tsv" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        var splitOf = new Dictionary<long, string>();
        foreach (string split in new[] { "train", "valid", "test" })
            foreach (var text in TextJsonl.Read(Path.Combine(a, $"{split}_texts.jsonl"), _ => { }))
                Assert.Equal(split, splitOf.TryGetValue(text.ImageIds[0], out var s) ? s : splitOf[text.ImageIds[0]] = split);
        Assert.Equal(40, splitOf.Count);
        Assert.True(splitOf.Values.Distinct().Count() == 3, "40 images at 0.5/0.25/0.25 should reach all three splits");
        Directory.Delete(input, true);
    }

    // Creates a file whose name is raw bytes (not valid UTF-8), as an archive made on Windows with GBK names leaves.
    [DllImport("libc", EntryPoint = "creat", SetLastError = true)]
    static extern int Creat(byte[] path, int mode);

    [DllImport("libc", EntryPoint = "close")]
    static extern int Close(int fd);

    [DllImport("libc", EntryPoint = "unlink")]
    static extern int Unlink(byte[] path);

    static void CreateWithRawName(string folder, byte[] name)
    {
        int fd = Creat([.. Encoding.UTF8.GetBytes(folder + "/"), .. name, 0], Convert.ToInt32("644", 8));
        Assert.True(fd >= 0, $"creat failed: {Marshal.GetLastPInvokeError()}");
        Close(fd);
    }

    [Fact]
    public void The_folder_walk_survives_link_loops_and_unreadable_captions_and_reports_every_file()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-walk").FullName;
        string input = Path.Combine(root, "in"), other = Path.Combine(root, "other");
        Directory.CreateDirectory(input);
        Directory.CreateDirectory(other);
        File.WriteAllBytes(Path.Combine(input, "cat.png"), Png(1));
        File.WriteAllText(Path.Combine(input, "cat.TXT"), "大写扩展名的描述");
        File.WriteAllText(Path.Combine(input, "orphan.txt"), "没有图片");
        File.WriteAllBytes(Path.Combine(input, "self.png"), Png(2));
        File.CreateSymbolicLink(Path.Combine(input, "self.txt"), "self.txt"); // a caption file that links to itself
        Directory.CreateSymbolicLink(Path.Combine(input, "again"), "."); // a folder loop
        File.WriteAllBytes(Path.Combine(other, "bird.png"), Png(3));
        File.WriteAllText(Path.Combine(other, "bird.txt"), "链接文件夹里的鸟");
        Directory.CreateSymbolicLink(Path.Combine(input, "linked"), other); // a linked folder is read
        byte[] rawName = [.. "bad"u8, 0xB9, 0xB7, .. ".png"u8];
        CreateWithRawName(input, rawName);
        string output = Path.Combine(input, "out"); // inside the input: a rerun must not read it

        var first = CliRunner.Run("convert-private-data", "--input", input, "--output", output, "--splits", "1,0,0");
        Assert.True(first.ExitCode == 0, first.Error);
        string rejectsText = File.ReadAllText(Path.Combine(output, "rejects.jsonl"));
        var texts = TextJsonl.Read(Path.Combine(output, "train_texts.jsonl"), e => Assert.Fail(e.ToString())).ToList();
        Assert.Equal(["大写扩展名的描述", "链接文件夹里的鸟"], texts.Select(t => t.Text).Order(StringComparer.Ordinal));

        var rejects = RejectsByItem(output);
        Assert.Equal(4, rejects.Count);
        Assert.Equal("caption file with no image of the same name (.jpg, .jpeg, .png, .webp, .bmp, .gif)", rejects[Path.Combine(input, "orphan.txt")]);
        Assert.StartsWith("caption file self.txt unreadable: ", rejects[Path.Combine(input, "self.png")]);
        Assert.Equal($"folder already read as {input}: a symbolic link loop or a second link to one folder, skipped",
            rejects[Path.Combine(input, "again")]);
        Assert.Equal("file name is not valid UTF-8 (a GBK name from a Windows archive?): rename it, e.g. convmv -f GBK -t UTF-8 --notest",
            Assert.Single(rejects, kv => kv.Key.Contains('\uFFFD')).Value);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json"))).RootElement;
        Assert.Equal(0, summary.GetProperty("duplicate_images_merged").GetInt32());
        Assert.Equal((3, 1, 3), (summary.GetProperty("images_seen").GetInt32(), summary.GetProperty("images_rejected").GetInt32(),
            summary.GetProperty("other_rejected").GetInt32())); // cat, bird, self.png; orphan.txt, the loop, the bad name
        AssertCountsAddUp(summary);

        Assert.Equal(0, CliRunner.Run("convert-private-data", "--input", input, "--output", output, "--splits", "1,0,0").ExitCode);
        Assert.Equal(rejectsText, File.ReadAllText(Path.Combine(output, "rejects.jsonl")));
        Unlink([.. Encoding.UTF8.GetBytes(input + "/"), .. rawName, 0]); // .NET cannot name it to delete it
        Directory.Delete(root, true);
    }

    [Fact]
    public void Caption_files_in_UTF16_are_read_by_their_byte_order_mark_and_NULs_are_refused()
    {
        string input = Directory.CreateTempSubdirectory("cnclip-utf16").FullName, output = input + "-out";
        void Case(string stem, byte shade, byte[] caption)
        {
            File.WriteAllBytes(Path.Combine(input, stem + ".png"), Png(shade));
            File.WriteAllBytes(Path.Combine(input, stem + ".txt"), caption);
        }
        Case("le", 1, [0xFF, 0xFE, .. Encoding.Unicode.GetBytes("小猫\r\n第二行\r\n")]); // Notepad's "Unicode"
        Case("be", 2, [0xFE, 0xFF, .. Encoding.BigEndianUnicode.GetBytes("小鸟")]);
        Case("nobom", 3, Encoding.Unicode.GetBytes("a cat")); // valid UTF-8 byte for byte, with a NUL after each letter
        var r = CliRunner.Run("convert-private-data", "--input", input, "--output", output, "--splits", "1,0,0");
        Assert.True(r.ExitCode == 0, r.Error);
        var texts = TextJsonl.Read(Path.Combine(output, "train_texts.jsonl"), e => Assert.Fail(e.ToString())).Select(t => t.Text);
        Assert.Equal(["小猫", "小鸟", "第二行"], texts.Order(StringComparer.Ordinal));
        var rejects = RejectsByItem(output);
        Assert.Equal("caption file nobom.txt holds NUL characters (UTF-16 without a byte-order mark?): save it as UTF-8",
            Assert.Single(rejects, kv => kv.Key.EndsWith("nobom.png")).Value);
        Assert.Single(rejects);
        Directory.Delete(input, true);
        Directory.Delete(output, true);
    }

    [Fact]
    public void Manifest_rows_that_are_headers_folders_missing_files_or_not_objects_are_each_handled_by_line()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-manifest-rows").FullName;
        File.WriteAllBytes(Path.Combine(dir, "a.png"), Png(1));
        File.WriteAllBytes(Path.Combine(dir, "b.png"), Png(2));
        File.WriteAllText(Path.Combine(dir, "bad.png"), "not an image");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        (List<string> Texts, Dictionary<string, string> Rejects) Convert(string name, string content)
        {
            string manifest = Path.Combine(dir, name), output = Path.Combine(dir, "out-" + name);
            File.WriteAllText(manifest, content);
            var r = CliRunner.Run("convert-private-data", "--input", manifest, "--output", output, "--splits", "1,0,0");
            Assert.True(r.ExitCode == 0, r.Error);
            var texts = TextJsonl.Read(Path.Combine(output, "train_texts.jsonl"), e => Assert.Fail(e.ToString())).Select(t => t.Text).Order(StringComparer.Ordinal).ToList();
            AssertCountsAddUp(JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json"))).RootElement);
            return (texts, RejectsByItem(output).ToDictionary(kv => kv.Key.Replace(dir + "/", ""), kv => kv.Value.Replace(dir + "/", "")));
        }

        // No header: the first row is data, not dropped.
        var noHeader = Convert("plain.csv", "a.png,第一行是数据\r\nb.png,第二行\r\n");
        Assert.Equal(["第一行是数据", "第二行"], noHeader.Texts);
        Assert.Empty(noHeader.Rejects);

        // A header names the columns: any order, other columns ignored.
        var named = Convert("named.csv", "source,caption,image\nweb,\"描述, 带逗号\",b.png\nweb,空路径,\nweb,文件夹,sub\nweb,不存在,missing.png\nweb,坏图,bad.png\nweb,只有两列\n");
        Assert.Equal(["描述, 带逗号"], named.Texts);
        Assert.Equal(new Dictionary<string, string>
        {
            ["named.csv:3"] = "empty image path",
            ["named.csv:4"] = "sub: a folder, not an image file",
            ["named.csv:5"] = "missing.png: no such file",
            ["named.csv:6"] = "bad.png: not a recognised image format (JPEG, PNG, WebP, BMP or GIF)",
            ["named.csv:7"] = "expected the columns source,caption,image",
        }, named.Rejects);

        // A quoted caption over two lines is one record, named by its first line; a quote that never closes costs
        // its own line only, and the rows after it are read.
        var multiline = Convert("multi.csv", "image,caption\na.png,\"第一行\n第二行\"\nb.png,\"没有结束\nmissing.png,后面一行\n");
        Assert.Equal(["第一行\n第二行"], multiline.Texts);
        Assert.Equal(new Dictionary<string, string>
        {
            ["multi.csv:4"] = "a quoted field is never closed",
            ["multi.csv:5"] = "missing.png: no such file",
        }, multiline.Rejects);

        var jsonl = Convert("rows.jsonl", string.Join("\n",
            "[1, 2]", "42", "null",
            "{\"image\": \"a.png\", \"captions\": [\"好\", 7]}",
            "{\"image\": \"a.png\", \"caption\": 5}",
            "{\"image\": \"\", \"caption\": \"空\"}",
            "{\"image\": \"a.png\", \"caption\": \"一\", \"captions\": [\"二\"]}",
            "{\"image\": \"missing.png\", \"caption\": \"缺\"}",
            "{\"image\": \"missing.png\", \"caption\": \"又缺\"}"));
        Assert.Equal(["一", "二"], jsonl.Texts);
        Assert.Equal([
            "rows.jsonl:1 expected a JSON object", "rows.jsonl:2 expected a JSON object", "rows.jsonl:3 expected a JSON object",
            "rows.jsonl:4 field 'captions' is not a list of strings", "rows.jsonl:5 field 'caption' is not a string",
            "rows.jsonl:6 empty image path", "rows.jsonl:8 missing.png: no such file (also on line 9)",
        ], jsonl.Rejects.Select(kv => $"{kv.Key} {kv.Value}"));
        Directory.Delete(dir, true);
    }

    /// <summary>Every image seen is kept, merged into a duplicate or rejected; every reject is an image or something else.</summary>
    static void AssertCountsAddUp(JsonElement summary)
    {
        int Get(string name) => summary.GetProperty(name).GetInt32();
        Assert.Equal(Get("images_seen"), Get("images_kept") + Get("duplicate_images_merged") + Get("images_rejected"));
        Assert.Equal(Get("rejected"), Get("images_rejected") + Get("other_rejected"));
    }

    static Dictionary<string, string> RejectsByItem(string output) =>
        File.ReadAllLines(Path.Combine(output, "rejects.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => e.GetProperty("item").GetString()!, e => e.GetProperty("reason").GetString()!);

    [Fact]
    public void A_jsonl_manifest_takes_relative_and_absolute_paths_one_caption_or_a_list_and_names_bad_lines()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-jsonl").FullName;
        string elsewhere = Directory.CreateTempSubdirectory("cnclip-jsonl-abs").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "图片"));
        File.WriteAllBytes(Path.Combine(dir, "图片", "a.png"), Png(1));
        File.WriteAllBytes(Path.Combine(dir, "b.jpg"), Jpeg(2));
        string absolute = Path.Combine(elsewhere, "c.png");
        File.WriteAllBytes(absolute, Png(3));
        string manifest = Path.Combine(dir, "m.jsonl");
        string[] lines =
        [
            "{\"image\": \"图片/a.png\", \"caption\": \"一个红色方块\"}",
            "{\"image\": \"b.jpg\", \"captions\": [\"蓝色\", \"  \", \"蓝色的圆\"]}",
            "",
            "{\"image\": " + JsonSerializer.Serialize(absolute) + ", \"caption\": \"绝对路径\", \"source\": \"extra field\"}",
            "{\"image\": \"b.jpg\", \"caption\": \"第二行的描述\"}",
            "{\"image\": \"b.jpg\", \"caption\": ",
            "{\"caption\": \"没有图片\"}",
            "{\"image\": \"图片/a.png\"}",
        ];
        // A BOM and CRLF line ends, as an editor on Windows writes them.
        File.WriteAllBytes(manifest, [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(string.Join("\r\n", lines) + "\r\n")]);
        string output = Path.Combine(dir, "out");
        var r = CliRunner.Run("convert-private-data", "--input", manifest, "--output", output, "--splits", "1,0,0");
        Assert.True(r.ExitCode == 0, r.Error);

        var images = ImageTsv.Read(Path.Combine(output, "train_imgs.tsv"), e => Assert.Fail(e.ToString())).ToList();
        var texts = TextJsonl.Read(Path.Combine(output, "train_texts.jsonl"), e => Assert.Fail(e.ToString())).ToList();
        Assert.Equal(3, images.Count);
        Assert.Equal(["一个红色方块", "第二行的描述", "绝对路径", "蓝色", "蓝色的圆"], texts.Select(t => t.Text).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(texts, t => t.Text.Contains('\r') || t.Text.StartsWith('\uFEFF'));
        // The two lines of b.jpg describe one image.
        Assert.Single(texts.Where(t => t.Text.StartsWith("蓝色") || t.Text == "第二行的描述").Select(t => t.ImageIds.Single()).Distinct());

        var rejects = RejectsByItem(output);
        Assert.Equal(3, rejects.Count);
        Assert.StartsWith("invalid JSON", rejects[$"{manifest}:6"]);
        Assert.Equal("field 'image' missing or not a string", rejects[$"{manifest}:7"]);
        Assert.Equal("field 'caption' or 'captions' missing", rejects[$"{manifest}:8"]);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json"))).RootElement;
        Assert.Equal(3, summary.GetProperty("images_kept").GetInt32());
        Assert.Equal(5, summary.GetProperty("captions").GetInt32());
        Assert.Equal(3, summary.GetProperty("rejected").GetInt32());
        Directory.Delete(dir, true);
        Directory.Delete(elsewhere, true);
    }

    [Fact]
    public void A_manifest_that_cannot_be_read_is_a_one_line_error_and_nothing_is_written()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-manifest-gbk").FullName;
        File.WriteAllBytes(Path.Combine(dir, "a.png"), Png(1));
        string manifest = Path.Combine(dir, "m.csv"), output = Path.Combine(dir, "out");
        File.WriteAllBytes(manifest, [.. Encoding.ASCII.GetBytes("a.png,"), 0xBA, 0xEC, 0xC9, 0xAB, (byte)'\n']); // 红色 in GBK
        var r = CliRunner.Run("convert-private-data", "--input", manifest, "--output", output, "--splits", "1,0,0");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        string line = Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"cnclip: error: {manifest}: manifest ", line);
        Assert.Contains("UTF-8", line);
        Assert.False(Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any(), "outputs were written");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_manifest_and_bad_split_fractions_are_handled()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-manifest").FullName;
        File.WriteAllBytes(Path.Combine(dir, "a.png"), Png(1));
        File.WriteAllText(Path.Combine(dir, "m.csv"), "image,caption\na.png,\"红色, 方块\"\nmissing.png,不存在\n");
        var r = CliRunner.Run("convert-private-data", "--input", Path.Combine(dir, "m.csv"), "--output", Path.Combine(dir, "out"), "--splits", "1,0,0");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal("红色, 方块", TextJsonl.Read(Path.Combine(dir, "out", "train_texts.jsonl"), _ => { }).Single().Text);
        Assert.Contains("missing.png", File.ReadAllText(Path.Combine(dir, "out", "rejects.jsonl")));
        var bad = CliRunner.Run("convert-private-data", "--input", dir, "--output", Path.Combine(dir, "out2"), "--splits", "0.9,0.2,0.1");
        Assert.Equal(ExitCodes.BadInput, bad.ExitCode);
        Assert.Equal("cnclip: error: --splits 0.9,0.2,0.1: three non-negative fractions summing to 1 are required, e.g. 0.9,0.05,0.05\n", bad.Error);
        Directory.Delete(dir, true);
    }
}
