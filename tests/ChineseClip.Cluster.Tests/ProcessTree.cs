namespace ChineseClip.Cluster.Tests;

/// <summary>Processes as /proc shows them: who started whom, and whether a process seen earlier still runs (a pid is
/// the same process only while its start time is the same).</summary>
public static class ProcessTree
{
    public readonly record struct Seen(int Pid, long StartTicks, string CommandLine)
    {
        public bool Alive => ProcessTree.StartTicks(Pid) == StartTicks;
        public override string ToString() => $"{Pid} {CommandLine}";
    }

    /// <summary>Every process now running as (pid, parent pid).</summary>
    public static IReadOnlyList<(int Pid, int Parent)> All()
    {
        var all = new List<(int, int)>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            if (Stat(pid) is { } stat) all.Add((pid, stat.Parent));
        }
        return all;
    }

    public static IReadOnlyList<int> Children(int pid) => All().Where(p => p.Parent == pid).Select(p => p.Pid).ToList();

    /// <summary><paramref name="roots"/> and all their descendants.</summary>
    public static IReadOnlyList<int> Descendants(IEnumerable<int> roots)
    {
        var all = All();
        var found = new List<int>(roots);
        for (int i = 0; i < found.Count; i++)
            found.AddRange(all.Where(p => p.Parent == found[i] && !found.Contains(p.Pid)).Select(p => p.Pid));
        return found;
    }

    public static Seen? Snapshot(int pid) => Stat(pid) is { } stat ? new Seen(pid, stat.StartTicks, CommandLine(pid)) : null;

    public static string CommandLine(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }

    static long StartTicks(int pid) => Stat(pid)?.StartTicks ?? -1;

    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after the last ')'.
    // Field 22 (starttime) is the 20th after the state. A zombie counts as gone.
    static (int Parent, long StartTicks)? Stat(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        string[] fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        if (fields[0] == "Z") return null;
        return (int.Parse(fields[1]), long.Parse(fields[19]));
    }
}
