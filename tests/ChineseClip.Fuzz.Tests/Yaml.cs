using System.Text;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace ChineseClip.Fuzz.Tests;

/// <summary>YAML to and from JSON trees, so that one structural mutation serves both formats. Written out as block
/// mappings and sequences with JSON-style scalars (valid YAML), read with YamlDotNet's representation model.</summary>
public static class Yaml
{
    public static JsonNode? Read(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return Node(stream.Documents[0].RootNode);

        static JsonNode? Node(YamlNode n) => n switch
        {
            YamlMappingNode m => new JsonObject(m.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, Node(kv.Value)))),
            YamlSequenceNode s => new JsonArray(s.Children.Select(Node).ToArray()),
            YamlScalarNode { Value: var v, Style: YamlDotNet.Core.ScalarStyle.Plain } when double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out double d)
                => v!.Contains('.') ? JsonValue.Create(d) : JsonNode.Parse(v),
            YamlScalarNode scalar => JsonValue.Create(scalar.Value),
            _ => throw new NotSupportedException(n.NodeType.ToString()),
        };
    }

    public static string Write(JsonNode? node)
    {
        var text = new StringBuilder();
        Block(node, 0, text);
        return text.ToString();
    }

    static void Block(JsonNode? node, int indent, StringBuilder text)
    {
        string pad = new(' ', indent);
        switch (node)
        {
            case JsonObject { Count: > 0 } o:
                foreach (var (key, value) in o)
                {
                    text.Append(pad).Append(Scalar(JsonValue.Create(key))).Append(':');
                    if (value is JsonObject { Count: > 0 } or JsonArray { Count: > 0 }) { text.Append('\n'); Block(value, indent + 2, text); }
                    else text.Append(' ').Append(Scalar(value)).Append('\n');
                }
                break;
            case JsonArray { Count: > 0 } a:
                foreach (var item in a)
                {
                    if (item is JsonObject { Count: > 0 } or JsonArray { Count: > 0 })
                    {
                        var inner = new StringBuilder();
                        Block(item, indent + 2, inner);
                        text.Append(pad).Append("- ").Append(inner.ToString()[(indent + 2)..]);
                    }
                    else text.Append(pad).Append("- ").Append(Scalar(item)).Append('\n');
                }
                break;
            default:
                text.Append(pad).Append(Scalar(node)).Append('\n');
                break;
        }
    }

    // A JSON literal is a YAML flow scalar; 1e400 and friends stay as written (JsonNode.Parse kept their text).
    static string Scalar(JsonNode? value) => value?.ToJsonString() ?? "null";
}
