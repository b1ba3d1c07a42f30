using System.Text.Json;
using ChineseClip.Data.Formats;

namespace ChineseClip.Cli.Tests;

public class SearchCommandTests
{
    static string BuildCollection(out string data)
    {
        data = ExtractFeaturesCommandTests.DataDir();
        string output = Path.Combine(data, "collection");
        var r = CliRunner.Run(IndexBuildCommandTests.BuildArgs(Path.Combine(data, "test_imgs.tsv"), output));
        Assert.True(r.ExitCode == 0, r.Error);
        return output;
    }

    [Fact]
    public void Exact_text_to_image_and_image_to_text_searches_equal_extract_features_and_predict()
    {
        string collection = BuildCollection(out string data), features = Path.Combine(data, "features");
        Assert.Equal(0, CliRunner.Run("extract-features", "--checkpoint", ExtractFeaturesCommandTests.Fixture("parity.pt"), "--arch", ExtractFeaturesCommandTests.Fixture("arch.json"),
            "--vocab", SharedFiles.Path("reference", "vocab.txt"), "--data-dir", data, "--split", "test", "--output-dir", features).ExitCode);
        var imageFeatures = FeatureJsonl.Read(Path.Combine(features, "test_imgs.img_feat.jsonl"), "image_id");
        var textFeatures = FeatureJsonl.Read(Path.Combine(features, "test_texts.txt_feat.jsonl"), "text_id");
        foreach (var (direction, target, k) in new[] { ("text-to-image", "images", 6), ("image-to-text", "texts", 10) })
        {
            string predictions = Path.Combine(data, $"{direction}.jsonl");
            Assert.Equal(0, CliRunner.Run("predict", "--image-feats", Path.Combine(features, "test_imgs.img_feat.jsonl"), "--text-feats",
                Path.Combine(features, "test_texts.txt_feat.jsonl"), "--output", predictions, "--top-k", $"{k}", "--direction", direction).ExitCode);
            foreach (string line in File.ReadLines(predictions))
            {
                using var prediction = JsonDocument.Parse(line);
                bool t2i = direction == "text-to-image";
                long queryId = prediction.RootElement.GetProperty(t2i ? "text_id" : "image_id").GetInt64();
                long[] expected = prediction.RootElement.GetProperty(t2i ? "image_ids" : "text_ids").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                string[] query = t2i
                    ? ["--text", TextJsonl.Read(Path.Combine(data, "test_texts.jsonl"), _ => { }).Single(t => t.TextId == queryId).Text]
                    : ["--image", WriteImage(data, queryId)];
                var r = CliRunner.Run(["search", "--index", collection, .. query, "--target", target, "--k", $"{k}", "--exact", "--json"]);
                Assert.True(r.ExitCode == 0, r.Error);
                using var answer = JsonDocument.Parse(r.Out);
                var results = answer.RootElement.GetProperty("results").EnumerateArray().ToList();
                Assert.Equal(expected, results.Select(e => e.GetProperty("id").GetInt64()));
                float[] queryVector = t2i ? textFeatures[queryId] : imageFeatures[queryId];
                foreach (var result in results)
                {
                    float[] other = t2i ? imageFeatures[result.GetProperty("id").GetInt64()] : textFeatures[result.GetProperty("id").GetInt64()];
                    double score = queryVector.Zip(other, (a, b) => (double)a * b).Sum();
                    Assert.Equal(score, result.GetProperty("score").GetDouble(), 1e-5);
                }
            }
        }
        Directory.Delete(data, true);
    }

    static string WriteImage(string data, long id)
    {
        string path = Path.Combine(data, $"query-{id}.img");
        File.WriteAllBytes(path, ImageTsv.Read(Path.Combine(data, "test_imgs.tsv"), _ => { }).Single(i => i.ImageId == id).Bytes);
        return path;
    }

    [Fact]
    public void The_table_lists_the_best_image_first_with_its_captions()
    {
        string collection = BuildCollection(out string data);
        var r = CliRunner.Run("search", "--index", collection, "--image", WriteImage(data, 1003), "--k", "3");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(3, r.OutLines.Length);
        Assert.StartsWith("1\t1003\t1.0000\t", r.OutLines[0]);
        Directory.Delete(data, true);
    }

    [Theory]
    [InlineData("--k", "0", "--k 0")]
    [InlineData("--k", "1001", "--k 1001")]
    [InlineData("--text", " ", "empty")]
    public void Bad_queries_are_one_line_and_exit_code_2(string option, string value, string named)
    {
        string collection = BuildCollection(out string data);
        string[] args = option == "--k" ? ["search", "--index", collection, "--text", "狗", option, value] : ["search", "--index", collection, option, value];
        var r = CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("cnclip: error: ", r.Error);
        Assert.Contains(named, r.Error);
        Directory.Delete(data, true);
    }
}
