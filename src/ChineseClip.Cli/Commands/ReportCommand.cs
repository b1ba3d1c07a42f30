// cnclip report RUN_DIR|SCHEDULE_ID --output FILE.html: the loss, learning-rate and recall curves of a training run,
// or of every stage of a schedule (their run folders from the coordinator's status), as one self-contained HTML page.
using System.CommandLine;
using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts;
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Training.Reporting;

namespace ChineseClip.Cli.Commands;

public static class ReportCommand
{
    public static Command Create(CliIO io, Func<string, string?> environment)
    {
        var target = new Argument<string>("RUN_DIR|SCHEDULE_ID") { Description = "a training run's folder (holding metrics.jsonl), or a schedule id" };
        var output = new Option<FileInfo>("--output") { Description = "the HTML file to write", Required = true };
        var coordinator = CoordinatorClient.AddressOption();
        var command = new Command("report", "Write the training curves (loss, learning rate, recall) of a run or of a schedule's stages as one HTML page.")
        {
            target, output, coordinator,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string what = r.GetValue(target)!;
            string file = r.GetValue(output)!.FullName;
            if (Directory.Exists(file)) throw new CliException($"--output {file}: a folder, not a file");
            string title;
            List<ReportSection> sections;
            if (Directory.Exists(what))
            {
                string metrics = new CheckpointLayout(Path.GetFullPath(what)).Metrics;
                if (!File.Exists(metrics)) throw new CliException($"{metrics}: no training metrics there (is {what} a run folder written by cnclip train?)");
                title = "Training report";
                sections = [new ReportSection($"Run {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(what)))}", RunMetrics.Read(metrics))];
            }
            else
            {
                var status = CoordinatorClient.Call(CoordinatorTarget.Resolve(r.GetValue(coordinator), environment), what,
                    client => client.GetSchedule(new GetScheduleRequest { Id = what }));
                title = $"Training report: schedule {status.Schedule.Name} ({status.Id})";
                sections = [];
                foreach (var stage in status.Stages)
                {
                    string metrics = stage.RunDir.Length > 0 ? new CheckpointLayout(stage.RunDir).Metrics : "";
                    if (metrics.Length == 0 || !File.Exists(metrics))
                    {
                        io.Error.WriteLine($"cnclip: stage {stage.Name} ({stage.State}): no metrics{(metrics.Length > 0 ? $" at {metrics}" : "")}; left out");
                        continue;
                    }
                    sections.Add(new ReportSection($"Stage {stage.Name} ({stage.State})", RunMetrics.Read(metrics)));
                }
                if (sections.Count == 0) throw new CliException($"schedule {what}: no stage has training metrics yet");
            }
            foreach (var problem in sections.SelectMany(s => s.Metrics.Problems)) io.Error.WriteLine($"cnclip: left out {problem}");

            // Written beside the target under a temporary name, then renamed: a reader never sees half a page.
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            string temporary = $"{file}.{Guid.NewGuid():N}.tmp";
            try
            {
                File.WriteAllText(temporary, ReportPage.Html(title, sections));
                File.Move(temporary, file, overwrite: true);
            }
            finally { File.Delete(temporary); }
            io.Error.WriteLine($"{file}: {sections.Count} run(s), {sections.Sum(s => s.Metrics.Loss.Count)} logged steps");
            return ExitCodes.Success;
        }));
        return command;
    }
}
