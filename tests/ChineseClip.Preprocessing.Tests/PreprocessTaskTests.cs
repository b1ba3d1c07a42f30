namespace ChineseClip.Preprocessing.Tests;

public class PreprocessTaskTests
{
    static readonly PreprocessTask Sample = new("/shards/train-00003.shard", "/data/muge", "train", 3, 300, 100, 224, 52,
        "/data/vocab.txt", "/shards", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

    [Fact]
    public void A_task_survives_its_json_form_unchanged()
    {
        Assert.Equal(Sample, PreprocessTask.FromJson(Sample.ToJson(), "t"));
        Assert.Equal(Sample with { TraceParent = null }, PreprocessTask.FromJson((Sample with { TraceParent = null }).ToJson(), "t"));
        Assert.Contains("\"dataset_dir\":\"/data/muge\"", Sample.ToJson());
    }

    [Theory]
    [InlineData("{\"id\": 5}", "task field 'id' missing or not a non-empty string")]
    [InlineData("[1]", "task is not a JSON object")]
    [InlineData("{oops", "task is not valid JSON")]
    public void A_bad_task_is_refused_with_one_line_naming_the_source_and_field(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => PreprocessTask.FromJson(json, "queue task x"));
        Assert.StartsWith($"queue task x: {expected}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_resolution_out_of_range_names_the_field()
    {
        string json = Sample.ToJson().Replace("\"resolution\":224", "\"resolution\":0");
        var e = Assert.Throws<FormatException>(() => PreprocessTask.FromJson(json, "t"));
        Assert.Equal("t: task field 'resolution' missing or not an integer in [1, 4096]", e.Message);
    }

    [Fact]
    public void Bad_options_are_refused_naming_the_configuration_key()
    {
        var e = Assert.Throws<ArgumentException>(() => new PreprocessingOptions { LeaseSeconds = 0, MaxAttempts = 0 }.Validated());
        Assert.Equal("Preprocessing:LeaseSeconds = 0: must be at least 0.5; Preprocessing:MaxAttempts = 0: must be at least 1", e.Message);
    }
}
