namespace ChineseClip.Model.Text;

/// <summary>Text clean-up the official training and evaluation loaders apply before <see cref="ClipTokenizer"/>.</summary>
public static class TextPreprocess
{
    /// <summary>
    /// cn_clip's _preprocess_text: Python's str.lower(), then curly double quotes “ ” become ".
    /// In practice only the quotes change ids (the vocabulary has no “ or ”): the tokenizer lower-cases each word itself.
    /// </summary>
    public static string ForLoader(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return PythonText.Lower(text).Replace('“', '"').Replace('”', '"');
    }
}
