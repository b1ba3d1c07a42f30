using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace ChineseClip.Fuzz.Tests;

/// <summary>Seeded mutations: of bytes (bit flips, truncation, overwritten and inserted runs, integers set to extreme
/// values), of text lines, and of JSON trees (wrong types, unknown keys, huge numbers, missing keys).</summary>
public static class Mutate
{
    /// <summary>One random byte-level mutation of <paramref name="seed"/>, described.</summary>
    public static (string What, byte[] Bytes) Bytes(byte[] seed, Random random, int from = 0)
    {
        var b = (byte[])seed.Clone();
        from = Math.Min(from, Math.Max(0, b.Length - 1));
        int At() => random.Next(from, b.Length);
        switch (random.Next(6))
        {
            case 0:
            {
                int flips = 1 + random.Next(8);
                for (int i = 0; i < flips; i++) b[At()] ^= (byte)(1 << random.Next(8));
                return ($"{flips} bit(s) flipped", b);
            }
            case 1:
            {
                int keep = random.Next(b.Length);
                return ($"truncated to {keep} of {b.Length} bytes", b[..keep]);
            }
            case 2:
            {
                int at = At(), n = Math.Min(b.Length - at, 1 + random.Next(32));
                random.NextBytes(b.AsSpan(at, n));
                return ($"{n} random bytes at {at}", b);
            }
            case 3:
            {
                int at = At();
                var extra = new byte[1 + random.Next(64)];
                random.NextBytes(extra);
                return ($"{extra.Length} bytes inserted at {at}", [.. b[..at], .. extra, .. b[at..]]);
            }
            case 4:
            {
                int at = Math.Min(At(), b.Length - 4);
                if (at < 0) return ("unchanged (too short)", b);
                uint value = Extremes[random.Next(Extremes.Length)];
                BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), value);
                return ($"0x{value:x8} written at {at}", b);
            }
            default:
            {
                int at = At(), n = Math.Min(b.Length - at, 1 + random.Next(256));
                return ($"{n} bytes removed at {at}", [.. b[..at], .. b[(at + n)..]]);
            }
        }
    }

    /// <summary>Integers that break size and count fields.</summary>
    public static readonly uint[] Extremes = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 0x40000000];

    /// <summary>A line replaced by a mutation of itself (text-level: characters removed, inserted, duplicated, invalid
    /// UTF-8, a very long line).</summary>
    public static (string What, byte[] Line) Line(string line, Random random)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(line);
        switch (random.Next(7))
        {
            case 0: return ("emptied", []);
            case 1:
            {
                int at = random.Next(Math.Max(1, line.Length));
                return ($"cut at {at}", Encoding.UTF8.GetBytes(line[..Math.Min(at, line.Length)]));
            }
            case 2:
            {
                int at = random.Next(line.Length + 1);
                string insert = Inserts[random.Next(Inserts.Length)];
                return ($"'{Printable(insert)}' inserted at {at}", Encoding.UTF8.GetBytes(line[..at] + insert + line[at..]));
            }
            case 3: return ("invalid UTF-8 bytes", [.. utf8[..(utf8.Length / 2)], 0xff, 0xfe, 0xc3, .. utf8[(utf8.Length / 2)..]]);
            case 4: return ("1 MB line", Encoding.UTF8.GetBytes(line + new string('9', 1 << 20)));
            case 5: return ("a tab for every space", Encoding.UTF8.GetBytes(line.Replace(' ', '\t')));
            default:
            {
                var (what, bytes) = Bytes(utf8, random);
                return (what, bytes.Where(x => x != (byte)'\n' && x != (byte)'\r').ToArray());
            }
        }
    }

    static readonly string[] Inserts = ["\t", "\"", "{", "}", "[", ",", ":", "\\", "\0", "-", "99999999999999999999", "1e400", "NaN", "\u2028"];

    static string Printable(string s) => s.Replace("\t", "\\t").Replace("\0", "\\0").Replace("\r", "\\r");

    /// <summary>Values of the wrong type or out of range for any field.</summary>
    public static readonly (string What, Func<JsonNode?> Value)[] BadValues =
    [
        ("a string", () => JsonValue.Create("abc")),
        ("an empty string", () => JsonValue.Create("")),
        ("null", () => null),
        ("true", () => JsonValue.Create(true)),
        ("an array", () => new JsonArray(1, 2)),
        ("an object", () => new JsonObject { ["x"] = 1 }),
        ("a huge integer", () => JsonNode.Parse("99999999999999999999999999")),
        ("1e400", () => JsonNode.Parse("1e400")),
        ("-1e308", () => JsonValue.Create(-1e308)),
        ("2^31", () => JsonValue.Create(2147483648L)),
        ("-1", () => JsonValue.Create(-1)),
        ("0", () => JsonValue.Create(0)),
        ("0.5", () => JsonValue.Create(0.5)),
        ("a 100 kB string", () => JsonValue.Create(new string('x', 100_000))),
    ];

    /// <summary>One structural mutation of a JSON object tree (the seed is not changed): a field set to a bad value,
    /// removed, renamed to an unknown key, or an unknown key added; at any depth.</summary>
    public static (string What, JsonNode? Tree) Json(JsonNode seed, Random random)
    {
        var tree = seed.DeepClone();
        var objects = new List<(string Path, JsonObject Node)>();
        Collect(tree, "", objects);
        var (path, node) = objects[random.Next(objects.Count)];
        var keys = node.Select(kv => kv.Key).ToList();
        string? key = keys.Count == 0 ? null : keys[random.Next(keys.Count)];
        switch (key is null ? 3 : random.Next(4))
        {
            case 0:
            {
                var (what, value) = BadValues[random.Next(BadValues.Length)];
                node[key!] = value();
                return ($"{path}{key} = {what}", tree);
            }
            case 1:
                node.Remove(key!);
                return ($"{path}{key} removed", tree);
            case 2:
            {
                var value = node[key!];
                node.Remove(key!);
                node[key + "_typo"] = value;
                return ($"{path}{key} renamed to {key}_typo", tree);
            }
            default:
                node["unknown_key"] = 1;
                return ($"{path}unknown_key added", tree);
        }
    }

    static void Collect(JsonNode? node, string path, List<(string, JsonObject)> objects)
    {
        if (node is JsonObject o)
        {
            objects.Add((path, o));
            foreach (var (k, v) in o) Collect(v, $"{path}{k}.", objects);
        }
        else if (node is JsonArray a)
        {
            for (int i = 0; i < a.Count; i++) Collect(a[i], $"{path.TrimEnd('.')}[{i}].", objects);
        }
    }

    /// <summary>Documents nested <paramref name="depth"/> deep, in JSON flow syntax (also valid YAML).</summary>
    public static string Nested(int depth) => new string('[', depth) + new string(']', depth);
}
