namespace ChineseClip.Data.Formats;

/// <summary>A rejected input record: which file and line, and why, as one line.</summary>
public sealed record RecordError(string File, int Line, string Reason)
{
    public override string ToString() => $"{File}:{Line}: {Reason}";
}
