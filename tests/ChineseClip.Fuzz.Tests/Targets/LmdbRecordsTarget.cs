using System.Text;
using ChineseClip.Data.Datasets;
using ChineseClip.Data.Demo;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using LightningDB;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>An official LMDB split (built from demo data) with one record changed: a pair's pickle bytes, an image's
/// base64 text, a count. Loaded as training loads it: a bad pair or image is reported and left out, every other pair
/// stays; a count that does not match the records (the database itself is damaged) may refuse the split, naming it.</summary>
public sealed class LmdbRecordsTarget : FuzzTarget
{
    readonly string _seedSplit;
    readonly ImageTransform _transform = new(16);
    readonly ClipTokenizer _tokenizer;
    readonly Dictionary<FuzzCase, (string Db, byte[] Key, byte[]? Value, HashSet<(long, long)> MayLose)> _changes = [];
    HashSet<(long Image, long Text)> _pairs = [];

    public LmdbRecordsTarget()
    {
        DemoDataGenerator.Generate(Work, seed: 4, scale: 0.1);
        _tokenizer = ClipTokenizer.FromVocabFile(Path.Combine(Work, "vocab.txt"));
        OfficialLmdb.Build(Path.Combine(Work, "stage1-muge"), Path.Combine(Work, "lmdb"), ["valid"], e => throw new InvalidOperationException(e));
        _seedSplit = Path.Combine(Work, "lmdb", "valid");
    }

    public override string Name => "LMDB records";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        var seedPairs = OfficialLmdb.ReadPairs(_seedSplit, e => throw new InvalidOperationException(e));
        _pairs = Load(_seedSplit, _ => { }).Pairs.Select(p => (p.ImageId, p.TextId)).ToHashSet();
        var imageIds = _pairs.Select(p => p.Image).Distinct().Order().ToList();
        int n = 0;
        FuzzCase Add(string what, string db, byte[] key, byte[]? value, IEnumerable<(long, long)> mayLose)
        {
            var c = new FuzzCase($"{db} {Encoding.UTF8.GetString(key)}: {what}", [], Path.Combine(Work, $"case-{n++}"));
            _changes[c] = (db, key, value, mayLose.ToHashSet());
            return c;
        }
        for (int i = 0; i < 30; i++)
        {
            int index = random.Next(seedPairs.Count);
            var p = seedPairs[index];
            var (what, bytes) = Mutate.Bytes(PairPickle.Write(p.ImageId, p.TextId, p.Text), random);
            yield return Add(what, "pairs", Encoding.UTF8.GetBytes(index.ToString()), bytes, [(p.ImageId, p.TextId)]);
        }
        for (int i = 0; i < 15; i++)
        {
            long id = imageIds[random.Next(imageIds.Count)];
            string text = OfficialLmdb.ReadImage(_seedSplit, id)!;
            var (what, bytes) = Mutate.Line(text, random);
            yield return Add(what, "imgs", Encoding.UTF8.GetBytes(id.ToString()), bytes, _pairs.Where(p => p.Image == id));
        }
        foreach (string count in new[] { "-1", "abc", "99999999999999999999", "0", "" })
        {
            yield return Add($"num_samples '{count}'", "pairs", "num_samples"u8.ToArray(), Encoding.UTF8.GetBytes(count), _pairs);
            yield return Add($"num_images '{count}'", "imgs", "num_images"u8.ToArray(), Encoding.UTF8.GetBytes(count), _pairs);
        }
        yield return Add("pair 0 deleted", "pairs", "0"u8.ToArray(), null, _pairs);
        yield return Add("an extra key", "imgs", "not-an-id"u8.ToArray(), "aGVsbG8="u8.ToArray(), []);
    }

    public override void Run(FuzzCase c)
    {
        var (db, key, value, mayLose) = _changes[c];
        string split = c.Source!;
        foreach (string part in new[] { "pairs", "imgs" })
        {
            Directory.CreateDirectory(Path.Combine(split, part));
            foreach (string file in Directory.GetFiles(Path.Combine(_seedSplit, part)))
                File.Copy(file, Path.Combine(split, part, Path.GetFileName(file)), overwrite: true);
        }
        using (var env = new LightningEnvironment(Path.Combine(split, db), new EnvironmentConfiguration { MapSize = 1 << 26 }))
        {
            env.Open();
            using var txn = env.BeginTransaction();
            using var database = txn.OpenDatabase();
            (value is null ? txn.Delete(database, key) : txn.Put(database, key, value)).ThrowOnError();
            txn.Commit().ThrowOnError();
        }
        var errors = new List<string>();
        HashSet<(long, long)> loaded;
        try
        {
            loaded = Load(split, errors.Add).Pairs.Select(p => (p.ImageId, p.TextId)).ToHashSet();
        }
        catch (InvalidDataException e) when (mayLose.Count < _pairs.Count)
        {
            throw new FuzzBugException($"one bad record refused the whole split: {e.Message}");
        }
        var lost = _pairs.Except(loaded).Except(mayLose).ToList();
        if (lost.Count > 0) throw new FuzzBugException($"{lost.Count} other pair(s) lost, e.g. image {lost[0].Item1} / text {lost[0].Item2}");
        var unnamed = errors.Where(e => !e.StartsWith(split, StringComparison.Ordinal)).ToList();
        if (unnamed.Count > 0) throw new FuzzBugException($"an error that does not name the split: {unnamed[0]}");
    }

    InMemoryPairDataset Load(string split, Action<string> onError) => InMemoryPairDataset.LoadLmdb(split, _transform, _tokenizer, 24, onError);

    public override bool IsRefusal(Exception e) => e is InvalidDataException;
}
