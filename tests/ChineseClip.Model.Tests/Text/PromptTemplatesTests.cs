using ChineseClip.Model.Text;

namespace ChineseClip.Model.Tests.Text;

public class PromptTemplatesTests
{
    [Fact]
    public void The_official_set_is_the_183_prompts_in_order_with_its_repeats()
    {
        var official = PromptTemplates.Official;
        Assert.Equal(183, official.Count);
        Assert.Equal(179, official.Distinct().Count());
        Assert.Equal("{}的照片", official[0]);
        Assert.Equal("质量差的{}的照片", official[1]);
        Assert.All(official, t => Assert.Equal(1, t.Split("{}").Length - 1));
        Assert.All(official, t => Assert.Equal(t.Trim(), t));
    }

    [Fact]
    public void Parse_skips_blank_lines_and_names_the_line_without_a_placeholder()
    {
        Assert.Equal(["一张{}的照片", "{}"], PromptTemplates.Parse(["一张{}的照片\r", "", "  ", "{}"], "t.txt"));
        var e = Assert.Throws<FormatException>(() => PromptTemplates.Parse(["{}的照片", "", "一张照片"], "t.txt"));
        Assert.Equal("t.txt:3: a template needs {} where the class name goes", e.Message);
        Assert.Equal("t.txt: no templates", Assert.Throws<FormatException>(() => PromptTemplates.Parse(["", " "], "t.txt")).Message);
    }
}
