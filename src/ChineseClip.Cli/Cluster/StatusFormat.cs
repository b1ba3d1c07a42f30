// How `cnclip status` and `cnclip watch` write what the coordinator says: tables of workers and schedules, a line per
// stage (state, members, progress, recall, init lineage, best checkpoint), and progress bars. Numbers and times are
// invariant (UTC, '.' decimals) so that the output reads the same everywhere.
using System.Globalization;
using System.Text;
using ChineseClip.Contracts.Coordinator;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace ChineseClip.Cli.Cluster;

public static class StatusFormat
{
    static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Proto JSON with the proto field names, as schedule files are written.</summary>
    public static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    public static bool IsFinal(RunState state) => state is RunState.Succeeded or RunState.Failed or RunState.Cancelled;

    /// <summary>The workers, then the schedules, as two tables.</summary>
    public static IEnumerable<string> Overview(IReadOnlyList<WorkerInfo> workers, IReadOnlyList<ScheduleStatus> schedules)
    {
        yield return workers.Count == 0 ? "workers: none connected" : $"workers: {workers.Count}";
        if (workers.Count > 0)
        {
            foreach (string line in Table(["NAME", "DEVICE", "BUSY WITH"],
                         workers.Select(w => new[] { w.Name, Or(w.Device), Or(w.BusyWith, "idle") })))
                yield return "  " + line;
        }
        yield return schedules.Count == 0 ? "schedules: none" : $"schedules: {schedules.Count}";
        if (schedules.Count > 0)
        {
            foreach (string line in Table(["ID", "NAME", "STATE", "STAGE", "UPDATED"],
                         schedules.Select(s => new[] { s.Id, Or(s.Schedule?.Name), State(s.State), CurrentStage(s), Time(s.Updated) })))
                yield return "  " + line;
        }
    }

    /// <summary>A schedule: a heading, then its stages one per line, then its error if it has one.</summary>
    public static IEnumerable<string> Detail(ScheduleStatus s)
    {
        yield return $"schedule {s.Id} \"{s.Schedule?.Name}\": {State(s.State)}  submitted {Time(s.Submitted)}  updated {Time(s.Updated)}";
        int nameWidth = s.Stages.Count == 0 ? 0 : Enumerable.Range(0, s.Stages.Count).Max(i => StageName(s, i).Length);
        for (int i = 0; i < s.Stages.Count; i++) yield return "  " + StageLine(s, i, nameWidth);
        // A coordinator that has not laid out the stages yet: what the schedule asks for.
        if (s.Stages.Count == 0 && s.Schedule is Schedule asked)
        {
            for (int i = 0; i < asked.Stages.Count; i++) yield return $"  {i + 1}/{asked.Stages.Count} {asked.Stages[i].Name}  {InitAsked(asked.Stages[i].Init)}";
        }
        if (s.Error.Length > 0) yield return $"  error: {s.Error}";
    }

    /// <summary>"2/3 name  STATE  members a,b  epoch ...  recall ...  init CKPT (from WHERE)  best CKPT".</summary>
    public static string StageLine(ScheduleStatus s, int index, int nameWidth = 0)
    {
        StageStatus stage = s.Stages[index];
        var parts = new List<string> { StageName(s, index).PadRight(nameWidth), State(stage.State).PadRight(9) };
        if (stage.Attempt > 1) parts.Add($"attempt {stage.Attempt}");
        if (stage.Members.Count > 0) parts.Add($"members {string.Join(",", stage.Members)}");
        if (stage.Progress is Progress p)
        {
            parts.Add(ProgressText(p, withEta: stage.State == RunState.Running));
            if (Recall(p) is string recall) parts.Add(recall);
        }
        parts.Add(Init(s, index));
        if (stage.BestCheckpoint.Length > 0) parts.Add($"best {stage.BestCheckpoint}");
        if (stage.Error.Length > 0) parts.Add($"error: {stage.Error}");
        return string.Join("  ", parts.Where(x => x.Length > 0)).TrimEnd();
    }

    /// <summary>"name [#####...............]  25%  epoch ..." for a running stage.</summary>
    public static string ProgressLine(ScheduleStatus s, int index, int width = 20)
    {
        Progress p = s.Stages[index].Progress ?? new Progress();
        double done = p.Steps > 0 ? Math.Clamp((double)p.Step / p.Steps, 0, 1) : 0;
        int filled = (int)Math.Round(done * width);
        string bar = $"[{new string('#', filled)}{new string('.', width - filled)}] {done * 100,3:0}%";
        return $"{StageName(s, index)} {bar}  {ProgressText(p, withEta: true)}".TrimEnd();
    }

    /// <summary>"epoch 2/3  step 120/300  loss 0.5230  12.5 samples/s  ETA 1m05s", leaving out what is not known yet.</summary>
    public static string ProgressText(Progress p, bool withEta)
    {
        var parts = new List<string>();
        if (p.Epochs > 0) parts.Add($"epoch {p.Epoch}/{p.Epochs}");
        if (p.Steps > 0) parts.Add($"step {p.Step}/{p.Steps}");
        if (p.Step > 0 || p.Loss != 0) parts.Add(string.Create(Invariant, $"loss {p.Loss:0.0000}"));
        if (p.SamplesPerSecond > 0) parts.Add(string.Create(Invariant, $"{p.SamplesPerSecond:0.0} samples/s"));
        if (withEta && p.EtaSeconds > 0) parts.Add($"ETA {Duration(p.EtaSeconds)}");
        return string.Join("  ", parts);
    }

    /// <summary>"recall t2i R@1/5/10 40.0/70.0/80.0 mean 63.3", or null before the first validation.</summary>
    public static string? Recall(Progress p)
    {
        if (p.T2IRecall.Count == 0 && p.MeanRecall == 0) return null;
        string t2i = string.Join("/", p.T2IRecall.Select(r => r.ToString("0.0", Invariant)));
        return string.Create(Invariant, $"recall t2i R@1/5/10 {(t2i.Length > 0 ? t2i : "-")} mean {p.MeanRecall:0.0}");
    }

    /// <summary>Where a stage starts from: the checkpoint and its lineage once the coordinator has chosen it, else what
    /// the schedule asked for.</summary>
    public static string Init(ScheduleStatus s, int index)
    {
        StageStatus stage = s.Stages[index];
        string from = stage.InitFrom.Length > 0 ? $" (from {stage.InitFrom})" : "";
        if (stage.InitCheckpoint.Length > 0) return $"init {stage.InitCheckpoint}{from}";
        if (stage.InitFrom.Length > 0) return $"init {stage.InitFrom}";
        if (stage.State is RunState.Pending or RunState.Unspecified && s.Schedule?.Stages.ElementAtOrDefault(index) is Stage asked)
            return InitAsked(asked.Init);
        return "init random";
    }

    /// <summary>"init best-of-previous": what a schedule asks a stage to start from.</summary>
    public static string InitAsked(StageInit init) => $"init {ScheduleFile.FriendlyName(Stage.Descriptor.FindFieldByNumber(Stage.InitFieldNumber).EnumType.FindValueByNumber((int)init))}";

    /// <summary>"2/3 flickr": the first stage that has not succeeded, or "-" when all have.</summary>
    public static string CurrentStage(ScheduleStatus s)
    {
        int i = s.Stages.ToList().FindIndex(t => t.State != RunState.Succeeded);
        return i < 0 ? "-" : StageName(s, i);
    }

    public static string StageName(ScheduleStatus s, int index) => $"{index + 1}/{s.Stages.Count} {s.Stages[index].Name}";

    public static string State(RunState state) => state == RunState.Unspecified ? "-" : state.ToString().ToUpperInvariant();

    public static string Time(Timestamp? t) =>
        t is null ? "-" : t.ToDateTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", Invariant);

    /// <summary>42s, 3m05s, 2h07m.</summary>
    public static string Duration(double seconds)
    {
        long s = (long)Math.Round(seconds);
        return s < 60 ? $"{s}s" : s < 3600 ? $"{s / 60}m{s % 60:00}s" : $"{s / 3600}h{s / 60 % 60:00}m";
    }

    static string Or(string? value, string otherwise = "-") => string.IsNullOrEmpty(value) ? otherwise : value;

    static IEnumerable<string> Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(header).ToList();
        int[] widths = Enumerable.Range(0, header.Length).Select(c => all.Max(r => r[c].Length)).ToArray();
        foreach (string[] row in all)
        {
            var line = new StringBuilder();
            for (int c = 0; c < row.Length; c++) line.Append(c == row.Length - 1 ? row[c] : row[c].PadRight(widths[c] + 2));
            yield return line.ToString();
        }
    }
}
