// A schedule file for `cnclip submit`: the Schedule message as proto JSON (proto or JSON field names) or as YAML. Both
// become one JSON tree, which is checked field by field against the message's descriptor, so that a mistake is named
// by its path (stages[1].init) and, in YAML, its line; Google.Protobuf's JsonParser then reads the checked tree.
// Friendlier than proto JSON: YAML numbers are fine where the message wants text (hyperparameters is map<string,string>),
// and enums take their lowercase names without the common prefix (init: best-of-previous).
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ChineseClip.Cli.Cluster;

public static partial class ScheduleFile
{
    public static Schedule Load(string path)
    {
        if (!File.Exists(path)) throw new CliException($"{path}: schedule file not found");
        return Parse(File.ReadAllText(path), YamlJson.IsYamlPath(path), path);
    }

    /// <summary>Reads a schedule from text; <paramref name="source"/> names it in errors.</summary>
    public static Schedule Parse(string text, bool yaml, string source)
    {
        var lines = new Dictionary<string, long>();
        JsonNode? tree = yaml ? ReadYaml(text, source, lines) : ReadJson(text, source);
        var checker = new Checker(path => (lines.TryGetValue(path, out long line) ? $"{source}:{line}" : source) + (path.Length > 0 ? $": {path}" : ""));
        JsonObject message = checker.Message(tree, Schedule.Descriptor, "");
        Schedule schedule;
        try
        {
            schedule = JsonParser.Default.Parse<Schedule>(message.ToJsonString());
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new CliException($"{source}: {e.Message}");
        }
        if (schedule.Stages.Count == 0) throw new CliException($"{checker.Where("stages")}: a schedule needs at least one stage");
        return schedule;
    }

    /// <summary>An enum value as the files may write it: lowercase, '-' for '_', without the prefix all values share
    /// (INIT_BEST_OF_PREVIOUS -> best-of-previous).</summary>
    public static string FriendlyName(EnumValueDescriptor value)
    {
        string prefix = CommonPrefix(value.EnumDescriptor);
        return value.Name[prefix.Length..].ToLowerInvariant().Replace('_', '-');
    }

    static string CommonPrefix(EnumDescriptor e)
    {
        string prefix = e.Values[0].Name;
        foreach (var v in e.Values)
        {
            int n = 0;
            while (n < prefix.Length && n < v.Name.Length && prefix[n] == v.Name[n]) n++;
            prefix = prefix[..n];
        }
        return prefix[..(prefix.LastIndexOf('_') + 1)];
    }

    static JsonNode? ReadJson(string text, string source)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            string line = e.LineNumber is long n ? $":{n + 1}" : "";
            throw new CliException($"{source}{line}: invalid JSON: {JsonReason().Replace(e.Message, "")}");
        }
    }

    [GeneratedRegex(@"\s*(Path:|LineNumber:).*$")]
    private static partial Regex JsonReason();

    // Every scalar stays text (the checker converts it to what the field wants); lines[path] is where the path's key
    // (or, at the top, the document) stands.
    static JsonNode? ReadYaml(string text, string source, Dictionary<string, long> lines)
    {
        try
        {
            return YamlJson.Parse(text, source, lines);
        }
        catch (InvalidDataException e)
        {
            throw new CliException(e.Message);
        }
    }

    /// <summary>Walks a JSON tree against a message descriptor and returns a tree JsonParser reads without surprises:
    /// known fields only, each value of its field's kind (text, whole number, enum name, ...). Errors name the path.</summary>
    sealed class Checker(Func<string, string> where)
    {
        public string Where(string path) => where(path);

        CliException Error(string path, string message) => new($"{where(path)}: {message}");

        public JsonObject Message(JsonNode? node, MessageDescriptor descriptor, string path)
        {
            if (node is not JsonObject o)
            {
                string fields = string.Join(", ", descriptor.Fields.InDeclarationOrder().Select(f => f.Name));
                throw Error(path, $"expected a mapping of fields ({fields}), got {Describe(node)}");
            }
            var result = new JsonObject();
            foreach (var (key, value) in o)
            {
                string fieldPath = YamlJson.Child(path, key);
                FieldDescriptor field = descriptor.Fields.InDeclarationOrder().FirstOrDefault(f => f.Name == key || f.JsonName == key)
                    ?? throw Error(fieldPath, $"unknown field (known: {string.Join(", ", descriptor.Fields.InDeclarationOrder().Select(f => f.Name))})");
                if (result.ContainsKey(field.Name)) throw Error(fieldPath, $"given twice ({field.Name} and {field.JsonName} are the same field)");
                if (value is null) continue;
                result[field.Name] = field.IsMap ? Map(field, value, fieldPath)
                    : field.IsRepeated ? List(field, value, fieldPath)
                    : Single(field, value, fieldPath);
            }
            return result;
        }

        JsonObject Map(FieldDescriptor field, JsonNode node, string path)
        {
            if (node is not JsonObject o) throw Error(path, $"expected a mapping of names to values, got {Describe(node)}");
            FieldDescriptor valueField = field.MessageType.FindFieldByNumber(2);
            var result = new JsonObject();
            foreach (var (key, value) in o)
            {
                string entryPath = YamlJson.Child(path, key);
                result[key] = Single(valueField, value ?? throw Error(entryPath, "missing value"), entryPath);
            }
            return result;
        }

        JsonArray List(FieldDescriptor field, JsonNode node, string path)
        {
            if (node is not JsonArray a) throw Error(path, $"expected a list, got {Describe(node)}");
            return new JsonArray(a.Select((item, i) =>
                item is null ? throw Error($"{path}[{i}]", "missing value") : Single(field, item, $"{path}[{i}]")).ToArray());
        }

        JsonNode Single(FieldDescriptor field, JsonNode node, string path)
        {
            switch (field.FieldType)
            {
                case FieldType.Message:
                    return Message(node, field.MessageType, path);
                case FieldType.Enum:
                    return Enum(field.EnumType, node, path);
                case FieldType.String:
                    // Text fields take any scalar as written (YAML scalars are text already; 5e-5 stays "5e-5").
                    if (Scalar(node) is string text) return JsonValue.Create(text);
                    throw Error(path, $"expected text, got {Describe(node)}");
                case FieldType.Int32 or FieldType.Int64 or FieldType.UInt32 or FieldType.UInt64 or FieldType.SInt32 or FieldType.SInt64
                    or FieldType.Fixed32 or FieldType.Fixed64 or FieldType.SFixed32 or FieldType.SFixed64:
                    if (Scalar(node) is string whole && long.TryParse(whole, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n))
                        return JsonValue.Create(n);
                    throw Error(path, $"expected a whole number, got {Describe(node)}");
                case FieldType.Double or FieldType.Float:
                    if (Scalar(node) is string real && double.TryParse(real, NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
                        return JsonValue.Create(d);
                    throw Error(path, $"expected a number, got {Describe(node)}");
                case FieldType.Bool:
                    if (Scalar(node) is string b && bool.TryParse(b, out bool truth)) return JsonValue.Create(truth);
                    throw Error(path, $"expected true or false, got {Describe(node)}");
                default:
                    return node.DeepClone();
            }
        }

        JsonNode Enum(EnumDescriptor e, JsonNode node, string path)
        {
            string? given = Scalar(node);
            string friendly = given?.Trim().ToLowerInvariant().Replace('_', '-') ?? "";
            var value = e.Values.FirstOrDefault(v => v.Name == given || FriendlyName(v) == friendly
                || int.TryParse(given, NumberStyles.None, CultureInfo.InvariantCulture, out int number) && v.Number == number);
            if (value is null)
            {
                string known = string.Join(", ", e.Values.Select(FriendlyName));
                throw Error(path, $"unknown value {Describe(node)} (expected one of {known}, or {string.Join(", ", e.Values.Select(v => v.Name))})");
            }
            return JsonValue.Create(value.Name);
        }

        // A scalar's text: strings as they are, numbers and booleans as JSON writes them; null for lists and mappings.
        static string? Scalar(JsonNode node) => node is JsonValue v
            ? v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString()
            : null;

        static string Describe(JsonNode? node) => node is not null && Scalar(node) is string s ? $"'{s}'" : Kind(node);

        static string Kind(JsonNode? node) => node switch
        {
            null => "nothing",
            JsonObject => "a mapping",
            JsonArray => "a list",
            _ => node.GetValueKind() switch
            {
                JsonValueKind.String => "text",
                JsonValueKind.Number => "a number",
                _ => "true/false",
            },
        };
    }
}
