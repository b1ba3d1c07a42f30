// Prompts for zero-shot classification: a class name becomes several sentences whose embeddings are averaged.
namespace ChineseClip.Model.Text;

public static class PromptTemplates
{
    /// <summary>The prompt set of the official zero-shot evaluation (cn_clip/eval/zeroshot_evaluation.py takes
    /// `openai_templates` of cn_clip/eval/cvinw_zeroshot_templates.py for every dataset without a set of its own): 183
    /// Chinese renderings of OpenAI's ImageNet prompts, in the official order and with its four repeated prompts kept,
    /// since the class vector is their mean. `{}` is replaced by the class name. Default of `cnclip zero-shot` and of the
    /// search service's /v1/classify. Stored in zero-shot-templates.txt, one per line.</summary>
    public static IReadOnlyList<string> Official => OfficialSet.Value;

    static readonly Lazy<string[]> OfficialSet = new(() =>
    {
        using var stream = typeof(PromptTemplates).Assembly.GetManifestResourceStream("ChineseClip.Model.Text.zero-shot-templates.txt")
            ?? throw new InvalidOperationException("zero-shot-templates.txt is not embedded in ChineseClip.Model.Inputs");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd().Split('\n'), "zero-shot-templates.txt");
    });

    /// <summary>Templates from the lines of a file (blank lines skipped); each must hold `{}` where the class name goes.
    /// <paramref name="source"/> names the file in the error, with the line.</summary>
    public static string[] Parse(IEnumerable<string> lines, string source)
    {
        var templates = new List<string>();
        int number = 0;
        foreach (string raw in lines)
        {
            number++;
            string line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            if (!line.Contains("{}")) throw new FormatException($"{source}:{number}: a template needs {{}} where the class name goes");
            templates.Add(line);
        }
        if (templates.Count == 0) throw new FormatException($"{source}: no templates");
        return [.. templates];
    }
}
