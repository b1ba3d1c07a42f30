// Why no tokenizer library: on the 400 official cases (../shared/fixtures/tokenizer_cases.jsonl) Microsoft.ML.Tokenizers
// 2.0.1's BertTokenizer gave the official ids for 191 and FastBertTokenizer 1.2.6 for 297 (../shared/docs/platform-notes.md).
// This is a direct port of cn_clip/clip/bert_tokenizer.py (BERT FullTokenizer, do_lower_case) and cn_clip's tokenize().
using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace ChineseClip.Model.Text;

/// <summary>
/// The official Chinese-CLIP tokenizer: BERT's BasicTokenizer (clean, split CJK ideographs, lower-case, strip accents,
/// split punctuation) and WordpieceTokenizer over vocab.txt; <see cref="Tokenize"/> is cn_clip.clip.tokenize().
/// Immutable, so one instance may serve many threads.
/// </summary>
public sealed class ClipTokenizer
{
    public const int DefaultContextLength = 52;
    const int MaxInputCharsPerWord = 200; // code points; a longer word becomes one [UNK]

    readonly string[] _tokens;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _ids;
    readonly int _longestToken; // UTF-16 length of the longest entry: WordPiece never tries a longer candidate

    public ClipTokenizer(IReadOnlyList<string> vocab)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        _tokens = new string[vocab.Count];
        var ids = new Dictionary<string, int>(vocab.Count);
        for (int i = 0; i < vocab.Count; i++)
        {
            // load_vocab strips every line (the official file's "\u2028" and "##\u2028" become "" and "##"),
            // and a later duplicate wins.
            string token = PythonText.Strip(vocab[i]);
            _tokens[i] = token;
            ids[token] = i;
            _longestToken = Math.Max(_longestToken, token.Length);
        }
        string[] missing = [.. new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]" }.Where(t => !ids.ContainsKey(t))];
        if (missing.Length > 0)
            throw new ArgumentException($"the vocabulary lacks {string.Join(", ", missing)}", nameof(vocab));
        PadId = ids["[PAD]"];
        UnkId = ids["[UNK]"];
        ClsId = ids["[CLS]"];
        SepId = ids["[SEP]"];
        _ids = ids.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Reads vocab.txt: one token a line, id = line number from 0.</summary>
    public static ClipTokenizer FromVocabFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: vocabulary file not found", path);
        string[] lines = File.ReadAllLines(path, Encoding.UTF8);
        if (lines.Length == 0) throw new InvalidDataException($"{path}: vocabulary file is empty");
        try
        {
            return new ClipTokenizer(lines);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Number of ids (lines of vocab.txt).</summary>
    public int VocabSize => _tokens.Length;
    public int PadId { get; }
    public int UnkId { get; }
    public int ClsId { get; }
    public int SepId { get; }

    /// <summary>FullTokenizer.tokenize(): the word pieces, "##" marking a continuation.</summary>
    public IReadOnlyList<string> WordPieces(string text) => [.. Run(text, int.MaxValue).Select(id => _tokens[id])];

    /// <summary>The ids of the word pieces, without [CLS], [SEP] or padding.</summary>
    public int[] Encode(string text) => [.. Run(text, int.MaxValue)];

    /// <summary>
    /// cn_clip.clip.tokenize() for one text: [CLS], the first contextLength - 2 piece ids (cut between pieces, even
    /// inside a word), [SEP], then [PAD] (0) up to contextLength.
    /// </summary>
    public long[] Tokenize(string text, int contextLength = DefaultContextLength)
    {
        CheckContextLength(contextLength);
        var row = new long[contextLength];
        Fill(text, row);
        return row;
    }

    /// <summary><see cref="Tokenize"/> for each text, one row each.</summary>
    public long[,] TokenizeBatch(IReadOnlyList<string> texts, int contextLength = DefaultContextLength)
    {
        ArgumentNullException.ThrowIfNull(texts);
        CheckContextLength(contextLength);
        var result = new long[texts.Count, contextLength];
        for (int i = 0; i < texts.Count; i++)
            Fill(texts[i], MemoryMarshal.CreateSpan(ref result[i, 0], contextLength));
        return result;
    }

    static void CheckContextLength(int contextLength) =>
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 3);

    void Fill(string text, Span<long> row)
    {
        List<int> ids = Run(text, row.Length - 2);
        int n = Math.Min(ids.Count, row.Length - 2);
        row[0] = ClsId;
        for (int i = 0; i < n; i++) row[i + 1] = ids[i];
        row[n + 1] = SepId;
        row[(n + 2)..].Fill(PadId);
    }

    /// <summary>The piece ids of <paramref name="text"/>; may stop once there are <paramref name="limit"/> or more.</summary>
    List<int> Run(string text, int limit)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(Math.Min(limit, text.Length + 1));
        char[] word = ArrayPool<char>.Shared.Rent(text.Length); // the current word, less dropped characters
        int length = 0;
        for (int i = 0; i < text.Length && ids.Count < limit;)
        {
            int cp = PythonText.CodePointAt(text, i, out int n);
            // _clean_text drops NUL, U+FFFD and Cc/Cf except \t \n \r, then every str.split() separator ends a word
            // (_is_whitespace turns \t \n \r and Zs into spaces; split() also breaks at U+2028 and U+2029).
            if (cp == 0 || cp == 0xFFFD || IsControl(cp))
            {
            }
            else if (PythonText.IsSpace(cp))
            {
                AddWord(word.AsSpan(0, length), ids);
                length = 0;
            }
            else if (IsCjkIdeograph(cp))
            {
                AddWord(word.AsSpan(0, length), ids);
                length = 0;
                AddIdeograph(text.AsSpan(i, n), ids);
            }
            else
            {
                text.AsSpan(i, n).CopyTo(word.AsSpan(length));
                length += n;
            }
            i += n;
        }
        AddWord(word.AsSpan(0, length), ids);
        ArrayPool<char>.Shared.Return(word);
        return ids;
    }

    // Python's _is_control: categories Cc and Cf, less \t \n \r (which count as whitespace).
    static bool IsControl(int cp) => cp switch
    {
        '\t' or '\n' or '\r' => false,
        < 0x20 or 0x7F => true,
        < 0x80 => false,
        _ => CharUnicodeInfo.GetUnicodeCategory(cp) is UnicodeCategory.Control or UnicodeCategory.Format,
    };

    static bool IsCjkIdeograph(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF)
            or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B820 and <= 0x2CEAF)
            or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);

    // Most words are one ideograph: no case, no accents, no punctuation; only the compatibility ideographs
    // (F900-FAFF, 2F800-2FA1F) change under NFD, so they take the general path.
    void AddIdeograph(ReadOnlySpan<char> ideograph, List<int> ids)
    {
        int cp = PythonText.CodePointAt(ideograph, 0, out _);
        if (cp is (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F))
        {
            AddWord(ideograph.ToArray(), ids);
        }
        else
        {
            ids.Add(_ids.TryGetValue(ideograph, out int id) ? id : UnkId);
        }
    }

    /// <summary>
    /// One whitespace-separated word: lower(), NFD without Mn marks, split on punctuation, WordPiece.
    /// An ASCII word needs no NFD and is lower-cased in place.
    /// </summary>
    void AddWord(Span<char> word, List<int> ids)
    {
        if (word.IsEmpty) return;
        if (Ascii.IsValid(word))
        {
            Ascii.ToLowerInPlace(word, out _);
            SplitAndWordPiece(word, ids);
            return;
        }
        char[] lowered = ArrayPool<char>.Shared.Rent(PythonText.MaxLowerLength(word.Length));
        int loweredLength = PythonText.Lower(word, lowered);
        ReadOnlySpan<char> nfd = Nfd(lowered.AsSpan(0, loweredLength));
        SplitAndWordPiece(nfd, ids);
        ArrayPool<char>.Shared.Return(lowered);
    }

    // .NET refuses to normalise lone surrogates and U+FFFE, which Python passes through unchanged. Both have
    // combining class 0 and no decomposition, so NFD never reorders across them: the runs between are normalised alone.
    static ReadOnlySpan<char> Nfd(ReadOnlySpan<char> s)
    {
        int barrier = NextNfdBarrier(s, 0);
        if (barrier == s.Length)
            return s.IsNormalized(NormalizationForm.FormD) ? s : s.ToString().Normalize(NormalizationForm.FormD);
        var result = new StringBuilder(s.Length * 2);
        for (int runStart = 0; runStart < s.Length; barrier = NextNfdBarrier(s, runStart))
        {
            result.Append(s[runStart..barrier].ToString().Normalize(NormalizationForm.FormD));
            if (barrier < s.Length) result.Append(s[barrier]);
            runStart = barrier + 1;
        }
        return result.ToString();
    }

    static int NextNfdBarrier(ReadOnlySpan<char> s, int from)
    {
        for (int i = from; i < s.Length;)
        {
            PythonText.CodePointAt(s, i, out int n);
            if (n == 1 && (char.IsSurrogate(s[i]) || s[i] == '\uFFFE')) return i;
            i += n;
        }
        return s.Length;
    }

    /// <summary>_run_strip_accents' Mn removal and _run_split_on_punc, then WordPiece on each piece.</summary>
    void SplitAndWordPiece(ReadOnlySpan<char> text, List<int> ids)
    {
        char[] piece = ArrayPool<char>.Shared.Rent(text.Length + 2);
        int length = 0;
        for (int i = 0; i < text.Length;)
        {
            int cp = PythonText.CodePointAt(text, i, out int n);
            UnicodeCategory category = CharUnicodeInfo.GetUnicodeCategory(cp);
            if (category == UnicodeCategory.NonSpacingMark)
            {
            }
            else if (IsPunctuation(cp, category))
            {
                WordPiece(piece, length, ids);
                text.Slice(i, n).CopyTo(piece.AsSpan(2));
                WordPiece(piece, n, ids);
                length = 0;
            }
            else
            {
                text.Slice(i, n).CopyTo(piece.AsSpan(2 + length));
                length += n;
            }
            i += n;
        }
        WordPiece(piece, length, ids);
        ArrayPool<char>.Shared.Return(piece);
    }

    // All non-alphanumeric printable ASCII counts as punctuation, as does every Unicode P* category.
    static bool IsPunctuation(int cp, UnicodeCategory category) =>
        cp is (>= 33 and <= 47) or (>= 58 and <= 64) or (>= 91 and <= 96) or (>= 123 and <= 126)
        || category is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;

    /// <summary>
    /// WordpieceTokenizer on the word in buffer[2..2+length]: greedy longest match first, "##" before a
    /// continuation, and one [UNK] for a word over 200 code points or one with any part not in the vocabulary.
    /// A continuation candidate is read in place with "##" written over the two units already consumed before it.
    /// </summary>
    void WordPiece(char[] buffer, int length, List<int> ids)
    {
        if (length == 0) return;
        ReadOnlySpan<char> word = buffer.AsSpan(2, length);
        if (length > MaxInputCharsPerWord && CodePointCount(word) > MaxInputCharsPerWord)
        {
            ids.Add(UnkId);
            return;
        }
        int first = ids.Count;
        for (int start = 0; start < length;)
        {
            int prefix = start == 0 ? 0 : 2;
            if (prefix > 0) buffer[start] = buffer[start + 1] = '#';
            int id = -1, end = Math.Min(length, start + _longestToken - prefix);
            // Candidates that split a surrogate pair are never in the vocabulary, so stepping by UTF-16 unit is exact.
            for (; end > start; end--)
                if (_ids.TryGetValue(buffer.AsSpan(2 + start - prefix, end - start + prefix), out id)) break;
            if (end <= start)
            {
                ids.RemoveRange(first, ids.Count - first);
                ids.Add(UnkId);
                return;
            }
            ids.Add(id);
            start = end;
        }
    }

    static int CodePointCount(ReadOnlySpan<char> s)
    {
        int count = 0;
        for (int i = 0; i < s.Length; count++)
        {
            PythonText.CodePointAt(s, i, out int n);
            i += n;
        }
        return count;
    }
}
