using System.Text;
using ChineseClip.Training;

namespace ChineseClip.Training.Tests;

/// <summary>Config files that are not what the trainer needs are one-line errors naming the file and the key.</summary>
public sealed class TrainOptionsTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("cnclip-options").FullName;

    string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    const string Base = "train_data: d\nvocab: v.txt\n";

    [Theory]
    [InlineData("batch_size: 1e400\n", "batch_size")]
    [InlineData("lr: -1e400\n", "lr")]
    public void A_yaml_number_beyond_a_double_is_an_error_naming_the_key(string line, string key)
    {
        string path = Write("huge.yaml", Base + "arch: RN50@RBT3-chinese\n" + line);
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(path));
        Assert.StartsWith($"{path}: key '{key}': ", e.Message);
    }

    [Theory]
    // A YAML scalar is text as written (vision_model: 5 names a model "5", refused later as an unknown arch).
    [InlineData("vision_model: [ViT-B-16]\ntext_model: RBT3-chinese\n")]
    [InlineData("vision_model: {a: 1}\ntext_model: [1]\n")]
    public void Tower_names_that_are_not_text_are_an_error_naming_the_key(string lines)
    {
        string path = Write("towers.yaml", Base + lines);
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(path));
        Assert.StartsWith($"{path}: key 'vision_model': ", e.Message);
    }

    [Fact]
    public void A_json_key_given_twice_is_invalid_json_naming_the_file()
    {
        string path = Write("twice.json", """{"train_data": "d", "vocab": "v.txt", "arch": "RN50@RBT3-chinese", "lr": 1, "lr": 2}""");
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(path));
        Assert.StartsWith($"{path}: invalid JSON: ", e.Message);
    }

    [Fact]
    public void A_yaml_alias_bomb_is_refused_before_it_is_expanded()
    {
        // 9^6 leaves once expanded: refused by the value budget, not by what the expansion turns into.
        var yaml = new StringBuilder(Base + "a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for (int i = 1; i < 6; i++) yaml.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9))}]\n");
        string path = Write("bomb.yaml", yaml.ToString());
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(path));
        Assert.StartsWith($"{path}:", e.Message);
        Assert.Contains("more than 100000 values", e.Message);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
