using System.Globalization;
using System.Text;

namespace ChineseClip.Model.Text;

/// <summary>
/// The Python 3 str behaviour that the official tokenizer and loaders depend on where .NET differs: what
/// str.split()/strip() call whitespace, and str.lower() (full mapping, so U+0130 'İ' becomes "i̇", and final sigma).
/// Code points, not UTF-16 units; a lone surrogate counts as one code point, as in Python.
/// </summary>
internal static class PythonText
{
    /// <summary>The code point at <paramref name="i"/>, and how many UTF-16 units it takes.</summary>
    public static int CodePointAt(ReadOnlySpan<char> s, int i, out int length)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            length = 2;
            return char.ConvertToUtf32(c, s[i + 1]);
        }
        length = 1;
        return c;
    }

    /// <summary>The code point that ends just before <paramref name="end"/>, and how many UTF-16 units it takes.</summary>
    static int CodePointBefore(ReadOnlySpan<char> s, int end, out int length)
    {
        char c = s[end - 1];
        if (char.IsLowSurrogate(c) && end >= 2 && char.IsHighSurrogate(s[end - 2]))
        {
            length = 2;
            return char.ConvertToUtf32(s[end - 2], c);
        }
        length = 1;
        return c;
    }

    /// <summary>str.isspace(): bidi class WS, B or S, or category Zs. Wider than char.IsWhiteSpace (U+001C-U+001F).</summary>
    public static bool IsSpace(int cp) => cp switch
    {
        (>= 0x09 and <= 0x0D) or (>= 0x1C and <= 0x20) or 0x85 => true,
        < 0xA0 => false,
        _ => CharUnicodeInfo.GetUnicodeCategory(cp) is UnicodeCategory.SpaceSeparator
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator,
    };

    /// <summary>str.strip() with no argument.</summary>
    public static string Strip(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsSpace(CodePointAt(s, start, out int n))) start += n;
        while (end > start && IsSpace(CodePointBefore(s, end, out int n))) end -= n;
        return start == 0 && end == s.Length ? s : s[start..end];
    }

    /// <summary>str.lower() of a whole string.</summary>
    public static string Lower(string s)
    {
        if (Ascii.IsValid(s)) return s.ToLowerInvariant();
        char[] buffer = new char[MaxLowerLength(s.Length)];
        return new string(buffer, 0, Lower(s, buffer));
    }

    /// <summary>Room <see cref="Lower(ReadOnlySpan{char}, Span{char})"/> may need: only U+0130 grows (1 unit to 2).</summary>
    public static int MaxLowerLength(int length) => 2 * length;

    /// <summary>str.lower() of <paramref name="s"/> into <paramref name="destination"/>; returns the length written.</summary>
    public static int Lower(ReadOnlySpan<char> s, Span<char> destination)
    {
        int written = 0;
        for (int i = 0; i < s.Length;)
        {
            int cp = CodePointAt(s, i, out int n);
            if (cp == 0x130)
            {
                destination[written++] = 'i';
                destination[written++] = '\u0307';
            }
            else if (cp == 0x3A3)
            {
                destination[written++] = IsFinalSigma(s, i) ? 'ς' : 'σ';
            }
            else if (n == 1 && char.IsSurrogate((char)cp))
            {
                destination[written++] = (char)cp;
            }
            else
            {
                written += Rune.ToLowerInvariant(new Rune(cp)).EncodeToUtf16(destination[written..]);
            }
            i += n;
        }
        return written;
    }

    // CPython's handle_capital_sigma: \p{cased} \p{case-ignorable}* U+03A3 !(\p{case-ignorable}* \p{cased}).
    static bool IsFinalSigma(ReadOnlySpan<char> s, int sigma)
    {
        int j = sigma, cp = -1;
        while (j > 0)
        {
            cp = CodePointBefore(s, j, out int n);
            j -= n;
            if (!IsCaseIgnorable(cp)) break;
            cp = -1;
        }
        if (cp < 0 || !IsCased(cp)) return false;
        for (j = sigma + 1; j < s.Length;)
        {
            cp = CodePointAt(s, j, out int n);
            j += n;
            if (!IsCaseIgnorable(cp)) return !IsCased(cp);
        }
        return true;
    }

    // Unicode's Cased property: Lu, Ll, Lt plus Other_Lowercase/Other_Uppercase outside them (checked against
    // Python 3.11's str.lower() over every code point; the modifier letters among those are case-ignorable first).
    static bool IsCased(int cp) =>
        CharUnicodeInfo.GetUnicodeCategory(cp) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter
        || cp is 0xAA or 0xBA or (>= 0x2160 and <= 0x217F) or (>= 0x24B6 and <= 0x24E9)
            or (>= 0x1F130 and <= 0x1F149) or (>= 0x1F150 and <= 0x1F169) or (>= 0x1F170 and <= 0x1F189);

    // Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk plus Word_Break MidLetter/MidNumLet/Single_Quote.
    static bool IsCaseIgnorable(int cp) =>
        CharUnicodeInfo.GetUnicodeCategory(cp) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || cp is 0x27 or 0x2E or 0x3A or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
}
