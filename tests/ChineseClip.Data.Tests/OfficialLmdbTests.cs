using System.Text.Json;
using ChineseClip.Data.Formats;
using LightningDB;

namespace ChineseClip.Data.Tests;

public class OfficialLmdbTests
{
    static readonly string Fixture = SharedFiles.Path("fixtures", "official-tiny");

    static string TempDir() => Directory.CreateTempSubdirectory("cnclip-lmdb").FullName;

    static string[] TsvBase64() =>
        File.ReadAllLines(Path.Combine(Fixture, "test_imgs.tsv")).Where(l => l.Length > 0).Select(l => l.Split('\t')[1].Trim()).ToArray();

    // Expected pairs straight from the jsonl: texts in file order, then each text's image_ids in order.
    static List<LmdbPair> ExpectedPairs() =>
        File.ReadAllLines(Path.Combine(Fixture, "test_texts.jsonl")).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement)
            .SelectMany(o => o.GetProperty("image_ids").EnumerateArray()
                .Select(id => new LmdbPair(id.GetInt64(), o.GetProperty("text_id").GetInt64(), o.GetProperty("text").GetString()!)))
            .ToList();

    [Fact]
    public void The_fixture_builds_and_reads_back_counts_pairs_in_order_and_the_tsv_base64()
    {
        string lmdb = TempDir();
        var errors = new List<string>();
        var counts = OfficialLmdb.Build(Fixture, lmdb, ["test"], errors.Add);
        Assert.Empty(errors);
        var expected = ExpectedPairs();
        Assert.Equal([new LmdbSplitCounts("test", 6, expected.Count)], counts);
        string split = Path.Combine(lmdb, "test");
        Assert.Equal(new LmdbSplitCounts("test", 6, expected.Count), OfficialLmdb.ReadCounts(split));
        Assert.Equal(expected, OfficialLmdb.ReadPairs(split, e => Assert.Fail(e)));
        string[] base64 = TsvBase64();
        long[] ids = [1001, 1002, 1003, 1004, 1005, 1006];
        for (int i = 0; i < ids.Length; i++) Assert.Equal(base64[i], OfficialLmdb.ReadImage(split, ids[i]));
        Assert.Null(OfficialLmdb.ReadImage(split, 999));
        Assert.Equal(["test"], Directory.GetDirectories(lmdb).Select(Path.GetFileName)); // no temporary folder left
        Directory.Delete(lmdb, true);
    }

    [Fact]
    public void Building_again_replaces_the_split_in_place()
    {
        string lmdb = TempDir();
        OfficialLmdb.Build(Fixture, lmdb, ["test"], e => Assert.Fail(e));
        var counts = OfficialLmdb.Build(Fixture, lmdb, ["test", "test"], e => Assert.Fail(e));
        Assert.Single(counts);
        Assert.Equal(ExpectedPairs().Count, OfficialLmdb.ReadCounts(Path.Combine(lmdb, "test")).Samples);
        Assert.Equal(["test"], Directory.GetDirectories(lmdb).Select(Path.GetFileName));
        Directory.Delete(lmdb, true);
    }

    // Expected bytes came from Python 3.11: pickle.dumps((image_id, text_id, text)).hex() (default protocol 4).
    [Theory]
    [InlineData(1001L, 10L, "一条白色的小狗在草地上奔跑",
        "80049532000000000000004de9034b0a8c27e4b880e69da1e799bde889b2e79a84e5b08fe78b97e59ca8e88d89e59cb0e4b88ae5a594e8b7919487942e")]
    [InlineData(1076345L, 8428L, "a", "8004950f000000000000004a796c10004dec208c01619487942e")]
    [InlineData(0L, 65536L, "", "8004950d000000000000004b004a000001008c009487942e")]
    [InlineData(-1L, 2147483648L, "b", "80049513000000000000004affffffff8a0500000080008c01629487942e")]
    public void A_pair_pickles_to_the_bytes_python_writes(long imageId, long textId, string text, string pythonHex)
    {
        byte[] bytes = PairPickle.Write(imageId, textId, text);
        Assert.Equal(pythonHex, Convert.ToHexStringLower(bytes));
        Assert.Equal(new LmdbPair(imageId, textId, text), PairPickle.Read(bytes));
    }

    // Python 3.11: pickle.dumps((5000000000, 255, 'x' * 300)) -- a LONG1 id and a BINUNICODE text of 300 bytes.
    [Fact]
    public void A_large_id_and_a_long_text_pickle_to_the_bytes_python_writes()
    {
        string expected = "8004953e010000000000008a0500f2052a014bff582c010000" + string.Concat(Enumerable.Repeat("78", 300)) + "9487942e";
        Assert.Equal(expected, Convert.ToHexStringLower(PairPickle.Write(5000000000, 255, new string('x', 300))));
    }

    // Python 3.11: pickle.dumps((1076345, 8428, 'a'), protocol=2) (BINPUT memo opcodes, no frame); and a MARK ... TUPLE form.
    [Theory]
    [InlineData("80024a796c10004dec2058010000006171008771012e", 1076345L, 8428L, "a")]
    [InlineData("80028a0500f2052a014bff58010000007871008771012e", 5000000000L, 255L, "x")]
    [InlineData("8005284b014b028c017a742e", 1L, 2L, "z")]
    public void A_pickle_of_protocol_2_or_5_reads(string hex, long imageId, long textId, string text) =>
        Assert.Equal(new LmdbPair(imageId, textId, text), PairPickle.Read(Convert.FromHexString(hex)));

    [Theory]
    [InlineData("80034b014b028c017a87")]       // truncated: no STOP
    [InlineData("80044b014b02869487942e")]     // 2-tuple
    [InlineData("8004950000000000000000552e")] // SHORT_BINSTRING (a Python 2 str) is not a text
    public void A_pickle_of_another_shape_is_invalid_data(string hex) =>
        Assert.Throws<InvalidDataException>(() => PairPickle.Read(Convert.FromHexString(hex)));

    [Fact]
    public void A_bad_tsv_line_is_reported_and_skipped()
    {
        string data = TempDir(), lmdb = Path.Combine(data, "lmdb");
        string[] tsv = File.ReadAllLines(Path.Combine(Fixture, "test_imgs.tsv")).Where(l => l.Length > 0).ToArray();
        File.WriteAllLines(Path.Combine(data, "x_imgs.tsv"), [tsv[0], "no-tab-here", tsv[1]]);
        File.WriteAllText(Path.Combine(data, "x_texts.jsonl"), "{\"text_id\": 1, \"text\": \"狗\", \"image_ids\": [1001, 1002]}\nnot json\n");
        var errors = new List<string>();
        var counts = OfficialLmdb.Build(data, lmdb, ["x"], errors.Add);
        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.Contains("x_imgs.tsv:2:"));
        Assert.Contains(errors, e => e.Contains("x_texts.jsonl:2:"));
        Assert.Equal([new LmdbSplitCounts("x", 2, 2)], counts);
        string split = Path.Combine(lmdb, "x");
        Assert.Equal([new LmdbPair(1001, 1, "狗"), new LmdbPair(1002, 1, "狗")], OfficialLmdb.ReadPairs(split, e => Assert.Fail(e)));
        Assert.Equal(tsv[1].Split('\t')[1], OfficialLmdb.ReadImage(split, 1002));
        Directory.Delete(data, true);
    }

    [Fact]
    public void A_split_with_a_missing_file_is_reported_and_the_others_still_build()
    {
        string lmdb = TempDir();
        var errors = new List<string>();
        var counts = OfficialLmdb.Build(Fixture, lmdb, ["train", "test"], errors.Add);
        Assert.Contains(Path.Combine(Fixture, "train_imgs.tsv"), Assert.Single(errors));
        Assert.Equal("test", Assert.Single(counts).Split);
        Assert.False(Directory.Exists(Path.Combine(lmdb, "train")));
        Directory.Delete(lmdb, true);
    }

    [Theory]
    [InlineData("80044b014b028c02ff7a87942e")]  // the text is not UTF-8
    [InlineData("80044b014b0258ffffffff7a87942e")] // a text of 4 GB in a 15-byte pickle
    public void A_pair_pickle_with_a_bad_text_is_invalid_data(string hex) =>
        Assert.Throws<InvalidDataException>(() => PairPickle.Read(Convert.FromHexString(hex)));

    [Fact]
    public void A_bad_pair_record_is_reported_by_its_key_and_the_other_pairs_still_read()
    {
        string lmdb = TempDir();
        OfficialLmdb.Build(Fixture, lmdb, ["test"], e => Assert.Fail(e));
        string split = Path.Combine(lmdb, "test");
        using (var env = new LightningEnvironment(Path.Combine(split, "pairs")))
        {
            env.Open();
            using var txn = env.BeginTransaction();
            using var db = txn.OpenDatabase();
            txn.Put(db, "1"u8.ToArray(), Convert.FromHexString("80044b01")).ThrowOnError(); // truncated
            txn.Commit().ThrowOnError();
        }
        var errors = new List<string>();
        var pairs = OfficialLmdb.ReadPairs(split, errors.Add);
        var expected = ExpectedPairs();
        Assert.Equal([expected[0], .. expected[2..]], pairs);
        Assert.Equal($"{split}/pairs: key 1: pickle: truncated", Assert.Single(errors));
        Directory.Delete(lmdb, true);
    }
}
