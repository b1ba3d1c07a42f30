using System.Text.Json.Nodes;
using ChineseClip.Contracts;

namespace ChineseClip.Coordinator.Tests.Contracts;

public class YamlJsonTests
{
    [Fact]
    public void Yaml_becomes_json_with_every_scalar_as_written_and_the_line_of_every_path()
    {
        var lines = new Dictionary<string, long>();
        var tree = YamlJson.Parse("name: x\nlr: 5e-5\nresume: ~\nstages:\n  - a: 1\n  - b: true\n", "f.yaml", lines);
        Assert.Equal("""{"name":"x","lr":"5e-5","resume":null,"stages":[{"a":"1"},{"b":"true"}]}""", tree!.ToJsonString());
        Assert.Equal(2, lines["lr"]);
        Assert.Equal(6, lines["stages[1].b"]);
    }

    [Theory]
    [InlineData("a: [unclosed\n", "f.yaml:2: invalid YAML: ")] // found at the end of the text
    [InlineData("a: 1\n---\nb: 2\n", "f.yaml: one YAML document expected, found 2")]
    [InlineData("? [k]\n: v\n", "f.yaml:1: : keys must be plain names")]
    public void Bad_yaml_is_one_line_naming_the_file_and_line(string text, string expectedStart)
    {
        Assert.StartsWith(expectedStart, Assert.Throws<InvalidDataException>(() => YamlJson.Parse(text, "f.yaml")).Message);
    }

    [Fact]
    public void An_empty_document_is_null()
    {
        Assert.Null(YamlJson.Parse("", "f.yaml"));
        Assert.IsType<JsonObject>(YamlJson.Parse("{}", "f.yaml"));
    }
}
