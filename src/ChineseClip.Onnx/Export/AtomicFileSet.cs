namespace ChineseClip.Onnx.Export;

/// <summary>Several files replaced together: each is written under a temporary name in its final folder, and only when
/// all are complete are they renamed into place; disposed before that, the temporary files are deleted, so a failed
/// export leaves the folder as it was. (AtomicFile in the model library does this for one file.)</summary>
internal sealed class AtomicFileSet : IDisposable
{
    readonly List<(string Temp, string Final)> _files = [];
    readonly List<string> _remove = [];
    bool _committed;

    /// <summary>A temporary path that becomes <paramref name="finalPath"/> on commit.</summary>
    public string Add(string finalPath)
    {
        string full = Path.GetFullPath(finalPath);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        _files.Add((temp, full));
        return temp;
    }

    /// <summary>A file deleted on commit unless it is written by this set (a stale data file of an older export).</summary>
    public void RemoveOnCommit(string path) => _remove.Add(Path.GetFullPath(path));

    /// <summary>Renames every written file into place (in the order added: a data file before the model naming it),
    /// then deletes the stale files that were not written again.</summary>
    public void Commit()
    {
        var moved = new HashSet<string>();
        foreach (var (temp, final) in _files)
        {
            if (!File.Exists(temp)) continue;
            File.Move(temp, final, overwrite: true);
            moved.Add(final);
        }
        foreach (string path in _remove)
            if (!moved.Contains(path) && File.Exists(path)) File.Delete(path);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        foreach (var (temp, _) in _files)
        {
            try { File.Delete(temp); } catch (IOException) { /* the original failure matters more */ }
        }
    }
}
