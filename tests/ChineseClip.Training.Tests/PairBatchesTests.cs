using ChineseClip.Data.Datasets;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Formats;
using ChineseClip.Data.Shards;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;

namespace ChineseClip.Training.Tests;

public class PairBatchesTests
{
    const int Resolution = 64, ContextLength = 32;

    static (string DataDir, ClipTokenizer Tokenizer) Demo()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-batches").FullName;
        DemoDataGenerator.Generate(root, seed: 3, scale: 0.1);
        return (Path.Combine(root, DemoDataGenerator.Datasets[0]), ClipTokenizer.FromVocabFile(Path.Combine(root, "vocab.txt")));
    }

    static InMemoryPairDataset Load(string dataDir, ClipTokenizer tokenizer, string split = "train") =>
        InMemoryPairDataset.Load(dataDir, split, new ImageTransform(Resolution), tokenizer, ContextLength, e => Assert.Fail(e));

    static float[] PixelsOf((TorchSharp.torch.Tensor Pixels, TorchSharp.torch.Tensor Ids) batch)
    {
        using (batch.Pixels) using (batch.Ids) return batch.Pixels.data<float>().ToArray();
    }

    static BatchAugmentation Augmentation(long seed, int epoch, int[] keys) => new(new TrainAugment(Resolution, seed), epoch, keys.Select(k => (long)k).ToArray());

    [Fact]
    public void Without_augmentation_a_batch_holds_the_eval_transform_of_each_pairs_image()
    {
        var (dataDir, tokenizer) = Demo();
        var data = Load(dataDir, tokenizer);
        var images = ImageTsv.Read(Path.Combine(dataDir, "train_imgs.tsv"), e => Assert.Fail(e.ToString())).ToDictionary(r => r.ImageId, r => r.Bytes);
        var transform = new ImageTransform(Resolution);
        int[] indices = [5, 0, 17, 5];
        float[] expected = indices.SelectMany(i => transform.ToPixels(images[data.Pairs[i].ImageId])).ToArray();
        Assert.Equal(expected, PixelsOf(data.Batch(indices)));
    }

    [Fact]
    public void Augmented_batches_depend_on_seed_epoch_and_sample_only_and_leave_the_stored_images_as_they_were()
    {
        var (dataDir, tokenizer) = Demo();
        var data = Load(dataDir, tokenizer);
        int[] indices = [3, 9, 12, 30];
        float[] plain = PixelsOf(data.Batch(indices));
        float[] epoch0 = PixelsOf(data.Batch(indices, Augmentation(123, 0, [100, 101, 102, 103])));
        Assert.Equal(epoch0, PixelsOf(data.Batch(indices, Augmentation(123, 0, [100, 101, 102, 103]))));
        Assert.NotEqual(plain, epoch0);
        int plane = 3 * Resolution * Resolution;
        float[] epoch1 = PixelsOf(data.Batch(indices, Augmentation(123, 1, [100, 101, 102, 103])));
        for (int i = 0; i < indices.Length; i++)
            Assert.False(epoch0.AsSpan(i * plane, plane).SequenceEqual(epoch1.AsSpan(i * plane, plane)), $"sample {indices[i]} is the same in two epochs");
        // A sample's pixels follow its key, not its place in the batch.
        float[] single = PixelsOf(data.Batch([12], Augmentation(123, 0, [102])));
        Assert.Equal(epoch0.AsSpan(2 * plane, plane).ToArray(), single);

        // What validation reads is untouched.
        Assert.Equal(plain, PixelsOf(data.Batch(indices)));
        var fresh = Load(dataDir, tokenizer);
        using var before = fresh.Images(0, 8);
        using var after = data.Images(0, 8);
        Assert.Equal(before.data<float>().ToArray(), after.data<float>().ToArray());
    }

    [Fact]
    public void Packed_shards_are_augmented_too()
    {
        var (dataDir, tokenizer) = Demo();
        string output = Directory.CreateTempSubdirectory("cnclip-batches-shards").FullName;
        foreach (var spec in ShardBuilder.Plan(dataDir, "train", 40, Resolution, ContextLength, e => Assert.Fail(e)))
            ShardBuilder.BuildAndWrite(spec, tokenizer, output, e => Assert.Fail(e));
        var shards = ShardSet.Open(output, "train");
        var memory = Load(dataDir, tokenizer);
        int[] indices = [1, 44, 80];
        Assert.Equal(PixelsOf(memory.Batch(indices)), PixelsOf(shards.Batch(indices)));
        float[] augmented = PixelsOf(shards.Batch(indices, Augmentation(5, 2, indices)));
        Assert.NotEqual(PixelsOf(shards.Batch(indices)), augmented);
        Assert.Equal(augmented, PixelsOf(shards.Batch(indices, Augmentation(5, 2, indices))));
        Assert.Equal((Resolution, Resolution), shards.SourceSize(44));
    }

    [Fact]
    public void An_official_lmdb_split_loads_the_same_pairs_texts_and_pixels_as_its_tsv_and_jsonl()
    {
        var (dataDir, tokenizer) = Demo();
        string lmdb = Path.Combine(Directory.CreateTempSubdirectory("cnclip-batches-lmdb").FullName, "lmdb");
        OfficialLmdb.Build(dataDir, lmdb, ["train", "valid"], e => Assert.Fail(e));
        Assert.Null(InMemoryPairDataset.LmdbSplitDirectory(dataDir, "train")); // tsv/jsonl present: they win
        string parent = Path.GetDirectoryName(lmdb)!;
        Assert.Equal(Path.Combine(lmdb, "valid"), InMemoryPairDataset.LmdbSplitDirectory(parent, "valid"));
        Assert.Equal(Path.Combine(lmdb, "train"), InMemoryPairDataset.LmdbSplitDirectory(Path.Combine(lmdb, "train"), "train"));
        Assert.Null(InMemoryPairDataset.LmdbSplitDirectory(lmdb, "train"));

        foreach (string split in new[] { "train", "valid" })
        {
            var fromTsv = Load(dataDir, tokenizer, split);
            var fromLmdb = InMemoryPairDataset.LoadLmdb(Path.Combine(lmdb, split), new ImageTransform(Resolution), tokenizer, ContextLength, e => Assert.Fail(e));
            Assert.Equal(fromTsv.Pairs, fromLmdb.Pairs);
            Assert.Equal(fromTsv.Texts.Select(t => (t.TextId, t.Text, string.Join(',', t.ImageIds))),
                fromLmdb.Texts.Select(t => (t.TextId, t.Text, string.Join(',', t.ImageIds))));
            Assert.Equal(fromTsv.ImageIds.Order(), fromLmdb.ImageIds.Order());
            int[] all = [.. Enumerable.Range(0, fromTsv.Count)];
            Assert.Equal(PixelsOf(fromTsv.Batch(all)), PixelsOf(fromLmdb.Batch(all)));
            Assert.Equal(PixelsOf(fromTsv.Batch(all, Augmentation(9, 1, all))), PixelsOf(fromLmdb.Batch(all, Augmentation(9, 1, all))));
        }
    }
}
