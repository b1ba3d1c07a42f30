// The official evaluation tools: top-k predictions from feature files (make_topk_predictions[_tr].py) and recall
// scoring of a prediction file against the ground truth (evaluation[_tr].py), with the same checks and JSON.
using System.Text.Json;
using System.Text.Json.Nodes;
using ChineseClip.Data.Formats;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public enum RetrievalDirection { TextToImage, ImageToText }

/// <summary>Recall as fractions (0..1), computed and printed as the official script does.</summary>
public sealed record EvaluationScore(double R1, double R5, double R10)
{
    public double MeanRecall => (R1 + R5 + R10) / 3.0;

    /// <summary>The official output JSON, values x100, written as Python's json.dump writes it.</summary>
    public string ToOfficialJson()
    {
        static string F(double v) => FeatureJsonl.PythonRepr(v);
        string mean = F(MeanRecall * 100);
        return $"{{\"success\": true, \"score\": {mean}, \"scoreJson\": {{\"score\": {mean}, \"mean_recall\": {mean}, " +
            $"\"r1\": {F(R1 * 100)}, \"r5\": {F(R5 * 100)}, \"r10\": {F(R10 * 100)}}}}}";
    }

    public static string OfficialErrorJson(string message) => new JsonObject
    {
        ["errorDetail"] = message, ["errorMsg"] = message, ["score"] = 0, ["scoreJson"] = new JsonObject(), ["success"] = false,
    }.ToJsonString();
}

public static class Evaluation
{
    public const int K = 10;

    static (string Query, string Results) Keys(RetrievalDirection d) =>
        d == RetrievalDirection.TextToImage ? ("text_id", "image_ids") : ("image_id", "text_ids");

    /// <summary>Top-k prediction lines, queries in feature-file order, best first.</summary>
    public static IEnumerable<string> Predict(string imageFeatures, string textFeatures, RetrievalDirection direction, int topK, int batchSize = 32768)
    {
        var images = FeatureJsonl.Read(imageFeatures, FeatureJsonl.ImageIdKey);
        var texts = FeatureJsonl.Read(textFeatures, FeatureJsonl.TextIdKey);
        var (queries, candidates) = direction == RetrievalDirection.TextToImage ? (texts, images) : (images, texts);
        if (candidates.Count < topK) throw new InvalidDataException($"top-k {topK} is more than the {candidates.Count} candidates");
        long[] candidateIds = candidates.Keys.ToArray();
        using var candidateMatrix = Stack(candidates.Values.ToList());
        var (queryKey, resultKey) = Keys(direction);
        foreach (var chunk in queries.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            long[] top = Stack(chunk.Select(q => q.Value).ToList()).matmul(candidateMatrix.t()).topk(topK, dim: 1).indexes.contiguous().data<long>().ToArray();
            for (int q = 0; q < chunk.Length; q++)
                yield return $"{{\"{queryKey}\": {chunk[q].Key}, \"{resultKey}\": [{string.Join(", ", top.Skip(q * topK).Take(topK).Select(i => candidateIds[i]))}]}}";
        }
    }

    static Tensor Stack(IReadOnlyList<float[]> rows)
    {
        int dim = rows[0].Length;
        var data = new float[rows.Count * dim];
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].Length != dim) throw new InvalidDataException($"features of different sizes ({dim} and {rows[i].Length})");
            rows[i].CopyTo(data, i * dim);
        }
        return tensor(data, [rows.Count, dim]);
    }

    /// <summary>Ground truth from `{split}_texts.jsonl`: text -> image_ids, or inverted for image -> text.</summary>
    public static Dictionary<long, HashSet<long>> GroundTruth(string textsJsonl, RetrievalDirection direction)
    {
        var truth = new Dictionary<long, HashSet<long>>();
        var errors = new List<RecordError>();
        foreach (var t in TextJsonl.Read(textsJsonl, errors.Add))
        {
            if (direction == RetrievalDirection.TextToImage) truth[t.TextId] = t.ImageIds.ToHashSet();
            else
                foreach (long image in t.ImageIds)
                {
                    if (!truth.TryGetValue(image, out var set)) truth[image] = set = new HashSet<long>();
                    set.Add(t.TextId);
                }
        }
        if (errors.Count > 0) throw new InvalidDataException(errors[0].ToString());
        return truth;
    }

    /// <summary>Scores predictions like the official evaluation: every query needs exactly k distinct integer ids.</summary>
    public static EvaluationScore Score(Dictionary<long, HashSet<long>> truth, string predictionsPath, RetrievalDirection direction)
    {
        var (queryKey, resultKey) = Keys(direction);
        var predictions = new Dictionary<long, long[]>();
        int lineNumber = 0;
        foreach (string raw in File.ReadLines(predictionsPath))
        {
            lineNumber++;
            string line = raw.Trim();
            if (line.Length == 0) continue;
            string where = $"{predictionsPath}:{lineNumber}";
            JsonElement o;
            try { o = JsonDocument.Parse(line).RootElement; }
            catch (JsonException) { throw new InvalidDataException($"{where}: cannot parse this line into a JSON object"); }
            if (o.ValueKind != JsonValueKind.Object || !o.TryGetProperty(queryKey, out var q) || q.ValueKind != JsonValueKind.Number || !q.TryGetInt64(out long query))
                throw new InvalidDataException($"{where}: '{queryKey}' missing or not an integer");
            if (!o.TryGetProperty(resultKey, out var ids) || ids.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{where}: {queryKey} {query}: '{resultKey}' missing or not a list");
            var list = new List<long>();
            foreach (var e in ids.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long id))
                    throw new InvalidDataException($"{where}: {queryKey} {query}: invalid id {e} at rank {list.Count + 1}, it should be an integer");
                list.Add(id);
            }
            if (list.Count != K) throw new InvalidDataException($"{where}: {queryKey} {query} has {list.Count} predicted ids, {K} are required");
            if (list.Distinct().Count() != K) throw new InvalidDataException($"{where}: {queryKey} {query} has duplicate ids in its top {K}");
            predictions[query] = list.ToArray();
        }
        var missing = truth.Keys.Where(k => !predictions.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{predictionsPath}: no prediction for {missing.Count} {queryKey}(s): {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", ..." : "")}");
        int r1 = 0, r5 = 0, r10 = 0;
        foreach (var (query, relevant) in truth)
        {
            long[] p = predictions[query];
            if (p.Take(1).Any(relevant.Contains)) r1++;
            if (p.Take(5).Any(relevant.Contains)) r5++;
            if (p.Take(10).Any(relevant.Contains)) r10++;
        }
        double n = truth.Count;
        return new EvaluationScore(r1 * 1.0 / n, r5 * 1.0 / n, r10 * 1.0 / n);
    }
}
