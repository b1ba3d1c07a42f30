// A training run's curves as the trainer logs them in RUN_DIR/metrics.jsonl (TrainLog): train lines (step, loss, lr),
// validation lines (step, mean recall, text->image R@1/5/10). A line that does not parse is named by file:line and
// left out; the rest of the file is kept. A resumed run appends steps it had already logged before it stopped: the
// later lines replace the earlier ones from that step on, so each curve is the history that led to the final weights.
using System.Text.Json;

namespace ChineseClip.Training.Reporting;

public sealed record CurvePoint(double X, double Y);

public sealed record RunMetrics(string Source, IReadOnlyList<CurvePoint> Loss, IReadOnlyList<CurvePoint> LearningRate,
    IReadOnlyList<CurvePoint> MeanRecall, IReadOnlyList<CurvePoint> TextToImageR1, IReadOnlyList<CurvePoint> TextToImageR10,
    IReadOnlyList<string> Problems)
{
    /// <summary>Reads a metrics.jsonl file; FileNotFoundException when it is not there.</summary>
    public static RunMetrics Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no training metrics (metrics.jsonl) there", path);
        List<CurvePoint> loss = [], lr = [], mean = [], r1 = [], r10 = [];
        var problems = new List<string>();
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (line.Trim().Length == 0) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var e = doc.RootElement;
                string type = e.GetProperty("type").GetString() ?? "";
                double step = e.GetProperty("step").GetDouble();
                if (type == "train")
                {
                    double l = e.GetProperty("loss").GetDouble(), rate = e.GetProperty("lr").GetDouble();
                    Append(loss, new(step, l));
                    Append(lr, new(step, rate));
                }
                else if (type == "valid")
                {
                    var t2i = e.GetProperty("t2i");
                    double m = e.GetProperty("mean_recall").GetDouble(), a = Recall(t2i, "R1"), b = Recall(t2i, "R10");
                    Append(mean, new(step, m));
                    Append(r1, new(step, a));
                    Append(r10, new(step, b));
                }
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                problems.Add($"{path}:{number}: {ex.Message.Split('\n')[0]}");
            }
        }
        return new RunMetrics(path, loss, lr, mean, r1, r10, problems);
    }

    static void Append(List<CurvePoint> curve, CurvePoint point)
    {
        // A step at or before the last one logged starts a resumed run's lines: they replace what they repeat.
        while (curve.Count > 0 && curve[^1].X >= point.X) curve.RemoveAt(curve.Count - 1);
        curve.Add(point);
    }

    // RetrievalMetrics is serialised with its property names (R1, R5, R10); accept snake or lower case too.
    static double Recall(JsonElement t2i, string name)
    {
        foreach (var p in t2i.EnumerateObject())
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase) || string.Equals(p.Name.Replace("_", ""), name, StringComparison.OrdinalIgnoreCase))
                return p.Value.GetDouble();
        throw new KeyNotFoundException($"t2i has no {name}");
    }
}
