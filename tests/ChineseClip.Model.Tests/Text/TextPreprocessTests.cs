using ChineseClip.Model.Text;

namespace ChineseClip.Model.Tests.Text;

public class TextPreprocessTests
{
    [Fact]
    public void ForLoader_lower_cases_and_straightens_curly_double_quotes() =>
        Assert.Equal("\"nike\" 跑鞋 ‘x’ i\u0307ς", TextPreprocess.ForLoader("“NIKE” 跑鞋 ‘X’ İΣ"));

    [Fact]
    public void ForLoader_matters_for_curly_quotes_which_the_vocabulary_lacks()
    {
        var tokenizer = ClipTokenizer.FromVocabFile(SharedFiles.Path("reference", "vocab.txt"));
        Assert.Equal(["[UNK]", "引", "号", "[UNK]"], tokenizer.WordPieces("“引号”"));
        Assert.Equal(["\"", "引", "号", "\""], tokenizer.WordPieces(TextPreprocess.ForLoader("“引号”")));
    }
}
