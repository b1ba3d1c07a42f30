using System.Text;
using ChineseClip.Data.Datasets;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>A split in the official tsv/jsonl layout (demo data) with one line of `valid_imgs.tsv` or
/// `valid_texts.jsonl` mutated, loaded as training loads it: the bad line may be reported (naming the file and that
/// line) and left out, but every pair that does not involve it must still be there, and nothing else reported.</summary>
public sealed class DataRecordsTarget : FuzzTarget
{
    readonly string _seed;
    readonly ImageTransform _transform = new(16);
    readonly ClipTokenizer _tokenizer;
    // Per case: the file and line mutated, and the pairs that may go missing with it.
    readonly Dictionary<FuzzCase, (string File, int Line, HashSet<(long, long)> MayLose)> _mutated = [];
    HashSet<(long Image, long Text)> _pairs = [];

    public DataRecordsTarget()
    {
        DemoDataGenerator.Generate(Work, seed: 3, scale: 0.1);
        _seed = Path.Combine(Work, "stage1-muge");
        _tokenizer = ClipTokenizer.FromVocabFile(Path.Combine(Work, "vocab.txt"));
    }

    public override string Name => "tsv/jsonl records";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        string[] images = File.ReadAllLines(Path.Combine(_seed, "valid_imgs.tsv"));
        string[] texts = File.ReadAllLines(Path.Combine(_seed, "valid_texts.jsonl"));
        _pairs = Load(_seed, _ => { }).Pairs.Select(p => (p.ImageId, p.TextId)).ToHashSet();
        for (int i = 0; i < 70; i++)
        {
            bool image = random.Next(2) == 0;
            string[] lines = image ? images : texts;
            int index = random.Next(lines.Length);
            var (what, line) = Mutate.Line(lines[index], random);
            string dir = Path.Combine(Work, $"case-{i}");
            string file = Path.Combine(dir, image ? "valid_imgs.tsv" : "valid_texts.jsonl");
            // Pairs of the mutated image (by the id in the original line) or of the mutated text.
            long id = long.Parse(image ? lines[index].Split('\t')[0] : System.Text.Json.JsonDocument.Parse(lines[index]).RootElement.GetProperty("text_id").GetRawText());
            var mayLose = _pairs.Where(p => image ? p.Image == id : p.Text == id).ToHashSet();
            byte[] content = [.. Encoding.UTF8.GetBytes(string.Join('\n', lines[..index]) + (index > 0 ? "\n" : "")), .. line,
                .. Encoding.UTF8.GetBytes("\n" + string.Join('\n', lines[(index + 1)..]) + "\n")];
            var c = new FuzzCase($"{Path.GetFileName(file)} line {index + 1}: {what}", content, file);
            _mutated[c] = (file, index + 1, mayLose);
            yield return c;
        }
    }

    public override void Run(FuzzCase c)
    {
        var (file, line, mayLose) = _mutated[c];
        string dir = Path.GetDirectoryName(file)!;
        Directory.CreateDirectory(dir);
        foreach (string name in new[] { "valid_imgs.tsv", "valid_texts.jsonl" })
            if (Path.Combine(dir, name) != file) File.Copy(Path.Combine(_seed, name), Path.Combine(dir, name), overwrite: true);
        File.WriteAllBytes(file, c.Input);
        var errors = new List<string>();
        var loaded = Load(dir, errors.Add).Pairs.Select(p => (p.ImageId, p.TextId)).ToHashSet();
        var lost = _pairs.Except(loaded).Except(mayLose).ToList();
        if (lost.Count > 0) throw new FuzzBugException($"{lost.Count} pair(s) of other lines lost, e.g. image {lost[0].Item1} / text {lost[0].Item2}");
        var stray = errors.Where(e => !e.StartsWith($"{file}:{line}:", StringComparison.Ordinal)
            // a mutated text may name an image that does not exist: reported on that text's line
            && !e.StartsWith($"{Path.Combine(dir, "valid_texts.jsonl")}:{line}:", StringComparison.Ordinal)).ToList();
        if (stray.Count > 0) throw new FuzzBugException($"an error not about line {line}: {stray[0]}");
    }

    InMemoryPairDataset Load(string dir, Action<string> onError) => InMemoryPairDataset.Load(dir, "valid", _transform, _tokenizer, 24, onError);

    // One bad line never fails the whole split.
    public override bool IsRefusal(Exception e) => false;
}
