using System.Text.Json;
using ChineseClip.Model.Text;

namespace ChineseClip.Model.Tests.Text;

public class ClipTokenizerTests
{
    static readonly ClipTokenizer Tokenizer = ClipTokenizer.FromVocabFile(SharedFiles.Path("reference", "vocab.txt"));

    static List<(string Text, long[] Ids)> ReadCases(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0).Select(line =>
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            return (root.GetProperty("text").GetString()!,
                root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        }).ToList();

    static void AssertAllIdentical(string path, int expectedCount)
    {
        var cases = ReadCases(path);
        Assert.Equal(expectedCount, cases.Count);
        var mismatches = cases.Select(c => (c.Text, c.Ids, Got: Tokenizer.Tokenize(c.Text)))
            .Where(c => !c.Ids.SequenceEqual(c.Got)).ToList();
        Assert.True(mismatches.Count == 0,
            $"{mismatches.Count}/{cases.Count} differ; first ones:\n" + string.Join("\n", mismatches.Take(5).Select(m =>
                $"{JsonSerializer.Serialize(m.Text)}\n  expected [{string.Join(", ", m.Ids)}]\n  got      [{string.Join(", ", m.Got)}]")));
    }

    [Fact]
    public void All_400_official_cases_give_identical_ids() =>
        AssertAllIdentical(SharedFiles.Path("fixtures", "tokenizer_cases.jsonl"), 400);

    [Fact]
    public void The_official_tiny_reference_tokens_are_identical() =>
        AssertAllIdentical(SharedFiles.Path("fixtures", "official-tiny", "ref_tokens.jsonl"), 12);

    [Fact]
    public void The_vocabulary_has_the_official_size_and_special_ids()
    {
        Assert.Equal(21128, Tokenizer.VocabSize);
        Assert.Equal((0, 100, 101, 102), (Tokenizer.PadId, Tokenizer.UnkId, Tokenizer.ClsId, Tokenizer.SepId));
    }

    [Fact]
    public void A_short_context_keeps_CLS_the_first_pieces_and_SEP()
    {
        Assert.Equal([101, 671, 1372, 1377, 4263, 4638, 2207, 4344, 1762, 102],
            Tokenizer.Tokenize("一只可爱的小猫在草地上玩耍，阳光明媚", 10));
        // The cut falls between the pieces of one word.
        Assert.Equal([101, 163, 8171, 12157, 8402, 102], Tokenizer.Tokenize("unbelievable unbelievable", 6));
    }

    [Fact]
    public void A_long_context_pads_with_zeros()
    {
        long[] row = Tokenizer.Tokenize("一只猫", 77);
        Assert.Equal(77, row.Length);
        Assert.Equal([101, 671, 1372, 4344, 102], row[..5]);
        Assert.All(row[5..], id => Assert.Equal(0, id));
    }

    [Fact]
    public void A_context_shorter_than_three_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Tokenize("猫", 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.TokenizeBatch(["猫"], 2));
    }

    [Fact]
    public void A_batch_has_one_row_per_text_equal_to_Tokenize()
    {
        string[] texts = ["一只猫", "", "Nike Air Max 270 黑白配色 👟"];
        long[,] batch = Tokenizer.TokenizeBatch(texts, 20);
        Assert.Equal((3, 20), (batch.GetLength(0), batch.GetLength(1)));
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(Tokenizer.Tokenize(texts[i], 20), Enumerable.Range(0, 20).Select(j => batch[i, j]));
        Assert.Equal([101, 102, 0], Enumerable.Range(0, 3).Select(j => batch[1, j]));
    }

    [Fact]
    public void CLS_typed_in_text_is_not_a_special_token()
    {
        Assert.Equal(["[", "cl", "##s", "]", "一", "只", "猫", "[", "sep", "]"], Tokenizer.WordPieces("[CLS]一只猫[SEP]"));
        Assert.Equal([138, 12847, 8118, 140, 671, 1372, 4344, 138, 9463, 140], Tokenizer.Encode("[CLS]一只猫[SEP]"));
    }

    [Fact]
    public void A_word_over_200_code_points_is_one_UNK()
    {
        Assert.Equal([100], Tokenizer.Encode(new string('a', 201)));
        Assert.Equal(100, Tokenizer.Encode(new string('a', 200)).Length);
        // Code points, not UTF-16 units: 101 emoji are 202 units but one 101-piece word.
        Assert.Equal(101, Tokenizer.Encode(string.Concat(Enumerable.Repeat("👍", 101))).Length);
    }

    [Fact]
    public void Astral_CJK_ideographs_are_split_off_like_the_basic_plane_ones()
    {
        Assert.Equal(["a", "[UNK]", "b"], Tokenizer.WordPieces("a𪞳b"));
        Assert.Equal(["好", "👍", "##👍"], Tokenizer.WordPieces("好👍👍"));
    }

    [Fact]
    public void Compatibility_ideographs_decompose_to_the_unified_ones() =>
        Assert.Equal(Tokenizer.Encode("豈"), Tokenizer.Encode("\uF900"));

    [Fact]
    public void Lower_casing_follows_Python()
    {
        // Python lowers 'İ' to "i" + U+0307, whose mark is then stripped; final sigma depends on what follows it.
        Assert.Equal(["is", "##tan", "##bu", "##l"], Tokenizer.WordPieces("İstanbul"));
        Assert.Equal(["ο", "##δ", "##ο", "##ς", "α", "##σ", ".", "β", "α", "##ς"], Tokenizer.WordPieces("ΟΔΟΣ ΑΣ.Β ΑΣ"));
        Assert.Equal(["z", "##ur", "##ich", "re", "##su", "##me"], Tokenizer.WordPieces("Zürich résumé"));
    }

    [Fact]
    public void Only_Cc_and_Cf_characters_are_dropped_and_line_separators_split_words()
    {
        Assert.Equal(["ab"], Tokenizer.WordPieces("a\u200Bb\0\uFFFD"));
        Assert.Equal(["ab", "cd"], Tokenizer.WordPieces("ab\u2028cd"));
        // The official _is_control tests Cc and Cf only: private-use characters and lone surrogates stay, as [UNK].
        Assert.Equal(["[UNK]"], Tokenizer.WordPieces("x\uE000y"));
        Assert.Equal(["[UNK]"], Tokenizer.WordPieces("a\uD800b"));
    }

    [Fact]
    public void Empty_and_blank_texts_give_no_pieces()
    {
        Assert.Empty(Tokenizer.Encode(""));
        Assert.Empty(Tokenizer.Encode(" \t\r\n\u3000"));
    }

    [Fact]
    public void A_missing_vocabulary_file_names_the_path()
    {
        string path = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid(), "vocab.txt");
        var error = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromVocabFile(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void An_empty_vocabulary_file_names_the_path()
    {
        string path = Path.GetTempFileName();
        try
        {
            var error = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromVocabFile(path));
            Assert.Contains(path, error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
