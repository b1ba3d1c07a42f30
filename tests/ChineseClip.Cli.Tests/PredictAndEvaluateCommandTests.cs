using System.Text.Json;
using ChineseClip.Data.Formats;

namespace ChineseClip.Cli.Tests;

public class PredictAndEvaluateCommandTests
{
    /// <summary>12 images e_i; texts 0-5 equal their image, texts 6-11 lean towards the next image, so their own
    /// image comes second: text->image R@1 50, R@5 100, R@10 100.</summary>
    static string Setup()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-eval").FullName;
        float[] Unit(int i, int? j = null)
        {
            var v = new float[16];
            v[i] = j is null ? 1f : 0.5f;
            if (j is int k) v[k] = 0.9f;
            return v;
        }
        File.WriteAllLines(Path.Combine(dir, "imgs.jsonl"), Enumerable.Range(0, 12).Select(i => FeatureJsonl.FormatLine("image_id", 100 + i, Unit(i))));
        File.WriteAllLines(Path.Combine(dir, "texts.jsonl"), Enumerable.Range(0, 12).Select(i => FeatureJsonl.FormatLine("text_id", 500 + i, i < 6 ? Unit(i) : Unit(i, (i + 1) % 12))));
        File.WriteAllLines(Path.Combine(dir, "truth.jsonl"), Enumerable.Range(0, 12).Select(i => JsonSerializer.Serialize(new { text_id = 500 + i, text = "t", image_ids = new[] { 100 + i } })));
        return dir;
    }

    [Fact]
    public void Predict_then_evaluate_gives_the_official_recall_json()
    {
        string dir = Setup();
        string predictions = Path.Combine(dir, "pred.jsonl"), result = Path.Combine(dir, "result.json");
        var p = CliRunner.Run("predict", "--image-feats", Path.Combine(dir, "imgs.jsonl"), "--text-feats", Path.Combine(dir, "texts.jsonl"), "--output", predictions);
        Assert.True(p.ExitCode == 0, p.Error);
        var lines = File.ReadAllLines(predictions);
        Assert.Equal(12, lines.Length);
        Assert.StartsWith("{\"text_id\": 500, \"image_ids\": [100, ", lines[0]);
        Assert.StartsWith("{\"text_id\": 506, \"image_ids\": [107, 106, ", lines[6]);

        var e = CliRunner.Run("evaluate", "--ground-truth", Path.Combine(dir, "truth.jsonl"), "--predictions", predictions, "--output", result);
        Assert.True(e.ExitCode == 0, e.Error);
        var json = JsonDocument.Parse(File.ReadAllText(result)).RootElement;
        Assert.True(json.GetProperty("success").GetBoolean());
        var s = json.GetProperty("scoreJson");
        Assert.Equal((50.0, 100.0, 100.0), (s.GetProperty("r1").GetDouble(), s.GetProperty("r5").GetDouble(), s.GetProperty("r10").GetDouble()));
        Assert.Equal((0.5 + 1.0 + 1.0) / 3.0 * 100, json.GetProperty("score").GetDouble());
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Image_to_text_predictions_are_scored_against_the_inverted_ground_truth()
    {
        string dir = Setup();
        string predictions = Path.Combine(dir, "pred.jsonl"), result = Path.Combine(dir, "result.json");
        Assert.Equal(0, CliRunner.Run("predict", "--image-feats", Path.Combine(dir, "imgs.jsonl"), "--text-feats", Path.Combine(dir, "texts.jsonl"),
            "--output", predictions, "--direction", "image-to-text").ExitCode);
        Assert.StartsWith("{\"image_id\": 100, \"text_ids\": [500, ", File.ReadLines(predictions).First());
        var e = CliRunner.Run("evaluate", "--ground-truth", Path.Combine(dir, "truth.jsonl"), "--predictions", predictions, "--output", result, "--direction", "image-to-text");
        Assert.True(e.ExitCode == 0, e.Error);
        Assert.True(JsonDocument.Parse(e.Out).RootElement.GetProperty("scoreJson").GetProperty("r10").GetDouble() == 100);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_prediction_with_too_few_ids_fails_in_one_line_and_in_the_output_json()
    {
        string dir = Setup();
        string predictions = Path.Combine(dir, "pred.jsonl"), result = Path.Combine(dir, "result.json");
        File.WriteAllText(predictions, "{\"text_id\": 500, \"image_ids\": [100, 101]}\n");
        var e = CliRunner.Run("evaluate", "--ground-truth", Path.Combine(dir, "truth.jsonl"), "--predictions", predictions, "--output", result);
        Assert.Equal(ExitCodes.BadInput, e.ExitCode);
        Assert.Equal($"cnclip: error: {predictions}:1: text_id 500 has 2 predicted ids, 10 are required\n", e.Error);
        Assert.False(JsonDocument.Parse(File.ReadAllText(result)).RootElement.GetProperty("success").GetBoolean());
        Directory.Delete(dir, true);
    }
}
