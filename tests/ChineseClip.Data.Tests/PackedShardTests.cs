using ChineseClip.Data.Datasets;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Formats;
using ChineseClip.Data.Shards;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;

namespace ChineseClip.Data.Tests;

public class PackedShardTests
{
    const int Resolution = 64, ContextLength = 32;

    static (string Root, string DataDir, ClipTokenizer Tokenizer) Demo()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-shards").FullName;
        DemoDataGenerator.Generate(root, seed: 5, scale: 0.1);
        return (root, Path.Combine(root, DemoDataGenerator.Datasets[0]), ClipTokenizer.FromVocabFile(Path.Combine(root, "vocab.txt")));
    }

    static List<string> WriteAll(string dataDir, string split, ClipTokenizer tokenizer, string outputDir, int pairsPerShard, List<string> errors)
    {
        var specs = ShardBuilder.Plan(dataDir, split, pairsPerShard, Resolution, ContextLength, errors.Add);
        return [.. specs.Select(s => ShardBuilder.BuildAndWrite(s, tokenizer, outputDir, errors.Add).Path)];
    }

    static void AssertSameAsInMemory(string dataDir, string split, ClipTokenizer tokenizer, ShardSet set)
    {
        var memory = InMemoryPairDataset.Load(dataDir, split, new ImageTransform(Resolution), tokenizer, ContextLength, _ => { });
        Assert.Equal(memory.Count, set.Count);
        for (int i = 0; i < set.Count; i++)
        {
            var (shard, k) = set.Locate(i);
            Assert.Equal(memory.Pairs[i].ImageId, shard.ImageId(k));
            Assert.Equal(memory.Pairs[i].TextId, shard.TextId(k));
        }
        // What a batch is made of (PairBatches, in ChineseClip.Training, normalises exactly these bytes and ids).
        Assert.Equal((memory.Resolution, memory.ContextLength), (set.Resolution, set.ContextLength));
        long[] expectedIds = new long[ContextLength], ids = new long[ContextLength];
        for (int i = 0; i < set.Count; i++)
        {
            Assert.True(memory.Pixels(i).SequenceEqual(set.Pixels(i)), $"pixels of pair {i}");
            memory.CopyTokens(i, expectedIds);
            set.CopyTokens(i, ids);
            Assert.Equal(expectedIds, ids);
        }
    }

    [Fact]
    public void The_shards_of_a_demo_split_give_the_same_pixels_and_tokens_as_the_in_memory_dataset()
    {
        var (_, dataDir, tokenizer) = Demo();
        string output = Directory.CreateTempSubdirectory("cnclip-shards-out").FullName;
        var errors = new List<string>();
        var paths = WriteAll(dataDir, "train", tokenizer, output, pairsPerShard: 25, errors);
        Assert.Empty(errors);
        Assert.True(paths.Count >= 3, $"{paths.Count} shards");
        Assert.Equal(["train-00000.shard", "train-00001.shard", "train-00002.shard"], paths.Take(3).Select(Path.GetFileName));
        AssertSameAsInMemory(dataDir, "train", tokenizer, ShardSet.Open(output, "train"));
    }

    [Fact]
    public void A_pair_whose_image_does_not_decode_is_left_out_as_the_in_memory_dataset_leaves_it_out()
    {
        var (_, dataDir, tokenizer) = Demo();
        // One image that is not an image, named by a new text, in the middle of the files.
        File.AppendAllText(ShardBuilder.ImagesPath(dataDir, "valid"), $"4242\t{Base64.Encode("not a picture"u8)}\n");
        var texts = File.ReadAllLines(ShardBuilder.TextsPath(dataDir, "valid")).ToList();
        texts.Insert(3, "{\"text_id\": 4343, \"text\": \"坏图片\", \"image_ids\": [4242]}");
        File.WriteAllLines(ShardBuilder.TextsPath(dataDir, "valid"), texts);

        string output = Directory.CreateTempSubdirectory("cnclip-shards-out").FullName;
        var errors = new List<string>();
        WriteAll(dataDir, "valid", tokenizer, output, pairsPerShard: 4, errors);
        Assert.Contains(errors, e => e.Contains("image 4242") && e.Contains("valid_imgs.tsv"));
        var set = ShardSet.Open(output, "valid");
        Assert.Equal(3, set.Shards[0].Count); // pair 3 of the first slice of 4 was the bad image
        Assert.Equal(4, set.Shards[0].Info.PairCount);
        AssertSameAsInMemory(dataDir, "valid", tokenizer, set);
    }

    [Fact]
    public void Writing_the_same_shard_twice_gives_identical_bytes_and_leaves_no_temporary_file()
    {
        var (_, dataDir, tokenizer) = Demo();
        var spec = ShardBuilder.Plan(dataDir, "train", 20, Resolution, ContextLength, _ => { })[1];
        string first = Directory.CreateTempSubdirectory("cnclip-a").FullName, second = Directory.CreateTempSubdirectory("cnclip-b").FullName;
        string a = ShardBuilder.BuildAndWrite(spec, tokenizer, first, _ => { }).Path;
        byte[] once = File.ReadAllBytes(a);
        ShardBuilder.BuildAndWrite(spec, tokenizer, first, _ => { });
        string b = ShardBuilder.BuildAndWrite(spec, tokenizer, second, _ => { }).Path;
        Assert.Equal(once, File.ReadAllBytes(a));
        Assert.Equal(once, File.ReadAllBytes(b));
        Assert.Equal([a], Directory.GetFiles(first));

        var shard = PackedShard.Open(a);
        Assert.Equal(new ShardInfo("train", 1, 20, 20, Resolution, ContextLength), shard.Info);
        Assert.Equal(20, shard.PairIndex(0));
        Assert.Equal(ContextLength, shard.Tokens(0).Length);
        Assert.Equal(3 * Resolution * Resolution, shard.Pixels(0).Length);
    }

    [Fact]
    public void A_damaged_shard_is_refused_with_one_line_naming_the_file()
    {
        var (_, dataDir, tokenizer) = Demo();
        string output = Directory.CreateTempSubdirectory("cnclip-bad").FullName;
        var spec = ShardBuilder.Plan(dataDir, "train", 10, Resolution, ContextLength, _ => { })[0];
        string path = ShardBuilder.BuildAndWrite(spec, tokenizer, output, _ => { }).Path;
        byte[] good = File.ReadAllBytes(path);

        byte[] flipped = (byte[])good.Clone();
        flipped[good.Length - 100] ^= 1; // one pixel bit
        File.WriteAllBytes(path, flipped);
        var e = Assert.Throws<InvalidDataException>(() => PackedShard.Open(path));
        Assert.StartsWith(path + ": corrupt shard (checksum", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        File.WriteAllBytes(path, good[..(good.Length / 2)]);
        e = Assert.Throws<InvalidDataException>(() => ShardSet.Open(output, "train"));
        Assert.StartsWith(path + ": corrupt shard", e.Message);

        File.WriteAllBytes(path, "CNCLIPSH"u8.ToArray());
        e = Assert.Throws<InvalidDataException>(() => PackedShard.Open(path));
        Assert.Contains("too short", e.Message);
    }

    [Fact]
    public void A_set_with_a_missing_shard_is_refused_naming_the_shard_that_does_not_follow()
    {
        var (_, dataDir, tokenizer) = Demo();
        string output = Directory.CreateTempSubdirectory("cnclip-gap").FullName;
        var paths = WriteAll(dataDir, "train", tokenizer, output, pairsPerShard: 30, []);
        File.Delete(paths[1]);
        var e = Assert.Throws<InvalidDataException>(() => ShardSet.Open(output, "train"));
        Assert.StartsWith(paths[2] + ": is shard 2 where shard 1 belongs", e.Message);
    }
}
