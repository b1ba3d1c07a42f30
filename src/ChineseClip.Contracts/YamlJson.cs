// YAML files (training configs, stage schedules) read as one JSON tree, so that both are checked by the code that
// checks their JSON form. Every scalar stays text, as written (5e-5 stays "5e-5"): the reader knows what each field
// wants and converts it (TrainArguments.TryToJson for training arguments, the message descriptor for schedules).
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ChineseClip.Contracts;

public static partial class YamlJson
{
    /// <summary>Values a document may hold once its aliases are expanded (configs and schedules have dozens to
    /// hundreds), and how deep it may nest.</summary>
    const int MaxValues = 100_000;
    const int MaxDepth = 64;

    /// <summary>True for a file name ending in .yaml or .yml.</summary>
    public static bool IsYamlPath(string path) =>
        path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase);

    /// <summary>The path of a mapping's entry: "key" at the top, "parent.key" below (a list item is "parent[i]").</summary>
    public static string Child(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    /// <summary>Reads one YAML document as JSON: mappings become objects, sequences arrays, scalars text; a plain
    /// empty, ~ or null scalar becomes null, and so does an empty document. When <paramref name="lines"/> is given,
    /// it receives the line of every path (<see cref="Child"/>; "" is the document).</summary>
    /// <exception cref="InvalidDataException">Invalid YAML, several documents, a key that is not a plain scalar, more
    /// than 100,000 values (an alias bomb) or 64 levels: one line, "{source}:{line}: ...".</exception>
    public static JsonNode? Parse(string text, string source, IDictionary<string, long>? lines = null)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new InvalidDataException($"{source}:{e.Start.Line}: invalid YAML: {YamlMark().Replace(e.Message, "")}");
        }
        if (stream.Documents.Count == 0) return null;
        if (stream.Documents.Count > 1) throw new InvalidDataException($"{source}: one YAML document expected, found {stream.Documents.Count}");
        int budget = MaxValues;
        return Convert(stream.Documents[0].RootNode, "", 0);

        JsonNode? Convert(YamlNode node, string path, int depth)
        {
            // An alias is a shared node here, expanded by this walk: an alias bomb (aliases of aliases) would never end,
            // and a deep nesting would overflow the stack.
            if (--budget < 0) throw new InvalidDataException($"{source}:{node.Start.Line}: more than {MaxValues} values (aliases expanding?)");
            if (depth > MaxDepth) throw new InvalidDataException($"{source}:{node.Start.Line}: {path}: nested deeper than {MaxDepth} levels");
            lines?.TryAdd(path, node.Start.Line);
            switch (node)
            {
                case YamlMappingNode map:
                    var o = new JsonObject();
                    foreach (var (k, v) in map.Children)
                    {
                        string key = (k as YamlScalarNode)?.Value
                            ?? throw new InvalidDataException($"{source}:{k.Start.Line}: {path}: keys must be plain names");
                        string child = Child(path, key);
                        if (lines is not null) lines[child] = k.Start.Line;
                        o[key] = Convert(v, child, depth + 1);
                    }
                    return o;
                case YamlSequenceNode list:
                    return new JsonArray(list.Children.Select((item, i) => Convert(item, $"{path}[{i}]", depth + 1)).ToArray());
                case YamlScalarNode { Style: ScalarStyle.Plain, Value: "" or "~" or "null" or "Null" or "NULL" }:
                    return null;
                case YamlScalarNode scalar:
                    return JsonValue.Create(scalar.Value);
                default:
                    throw new InvalidDataException($"{source}:{node.Start.Line}: {path}: unsupported YAML node");
            }
        }
    }

    [GeneratedRegex(@"^\(Line: [^)]*\) - \(Line: [^)]*\): ")]
    private static partial Regex YamlMark();
}
