using System.Text;
using System.Text.Json.Nodes;
using ChineseClip.Data.Demo;
using ChineseClip.Training;

namespace ChineseClip.Fuzz.Tests.Targets;

/// <summary>Training configs (`cnclip train --config`, the demo's train-stage1.yaml as the seed) in YAML and JSON:
/// fields of the wrong type, missing, unknown or misspelled, huge numbers, broken syntax, deep nesting, alias bombs.
/// Read as the trainer reads them; a refusal is one line naming the file and the key.</summary>
public sealed class TrainConfigTarget : FuzzTarget
{
    public override string Name => "train configs";

    public override IEnumerable<FuzzCase> Cases(Random random)
    {
        DemoDataGenerator.Generate(Work, seed: 5, scale: 0.1);
        var seed = Yaml.Read(File.ReadAllText(Path.Combine(Work, "train-stage1.yaml")))!;
        int n = 0;
        FuzzCase Case(string what, string text, bool yaml) => new($"{(yaml ? "yaml" : "json")}: {what}", Encoding.UTF8.GetBytes(text),
            Path.Combine(Work, $"case-{n++}.{(yaml ? "yaml" : "json")}"));

        foreach (bool yaml in new[] { true, false })
        {
            for (int i = 0; i < 35; i++)
            {
                var (what, tree) = Mutate.Json(seed, random);
                yield return Case(what, yaml ? Yaml.Write(tree) : tree?.ToJsonString() ?? "null", yaml);
            }
            byte[] text = Encoding.UTF8.GetBytes(yaml ? Yaml.Write(seed) : seed.ToJsonString());
            for (int i = 0; i < 15; i++)
            {
                var (what, bytes) = Mutate.Bytes(text, random);
                yield return new FuzzCase($"{(yaml ? "yaml" : "json")}: {what}", bytes, Path.Combine(Work, $"case-{n++}.{(yaml ? "yaml" : "json")}"));
            }
            foreach (var (what, tree) in Crafted(seed)) yield return Case(what, yaml ? Yaml.Write(tree) : tree.ToJsonString(), yaml);
        }
        yield return Case("nested 10,000 deep", Mutate.Nested(10_000), yaml: true);
        yield return Case("nested 10,000 deep", Mutate.Nested(10_000), yaml: false);
        yield return Case("an alias bomb", AliasBomb(), yaml: true);
        yield return Case("a list", "- 1\n- 2\n", yaml: true);
        yield return Case("a number", "42", yaml: false);
        yield return Case("empty", "", yaml: true);
        yield return Case("empty", "", yaml: false);
        yield return Case("a duplicate key", "batch_size: 8\nbatch_size: 9\n", yaml: true);
        yield return Case("a duplicate key", """{"batch_size": 8, "batch_size": 9}""", yaml: false);
    }

    static IEnumerable<(string, JsonNode)> Crafted(JsonNode seed)
    {
        JsonNode With(string key, JsonNode? value)
        {
            var tree = seed.DeepClone();
            tree[key] = value;
            return tree;
        }
        yield return ("batch_size 1e400", With("batch_size", JsonNode.Parse("1e400")));
        yield return ("lr 1e400", With("lr", JsonNode.Parse("1e400")));
        yield return ("max_epochs 2^31", With("max_epochs", JsonValue.Create(2147483648L)));
        yield return ("max_steps 2^63", With("max_steps", JsonNode.Parse("9223372036854775808")));
        yield return ("warmup -1", With("warmup", JsonValue.Create(-1)));
        yield return ("seed 1.5", With("seed", JsonValue.Create(1.5)));
        yield return ("vision_model 5", With("vision_model", JsonValue.Create(5)).AsObject().Also(o => { o.Remove("arch"); o["text_model"] = "RBT3-chinese"; }));
        yield return ("vision_model and text_model objects", With("vision_model", new JsonObject()).AsObject().Also(o => { o.Remove("arch"); o["text_model"] = new JsonArray(); }));
        yield return ("device 'cuda:99999999999'", With("device", "cuda:99999999999"));
        yield return ("name with a slash", With("name", "../../../escape"));
        yield return ("logs null", With("logs", null));
        yield return ("train-data with a dash", With("train-data", "x").AsObject().Also(o => o.Remove("train_data")));
    }

    // Nine levels of nine aliases: 9^9 (387 million) leaves when expanded.
    public static string AliasBomb()
    {
        var text = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for (int i = 1; i < 9; i++) text.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9))}]\n");
        return text.Append("batch_size: *a8\n").ToString();
    }

    public override void Run(FuzzCase c)
    {
        File.WriteAllBytes(c.Source!, c.Input);
        TrainOptions.Load(c.Source!);
    }

    public override bool IsRefusal(Exception e) => e is InvalidDataException;
}

static class JsonObjectExtensions
{
    public static JsonObject Also(this JsonObject o, Action<JsonObject> change)
    {
        change(o);
        return o;
    }
}
