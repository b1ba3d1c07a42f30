using System.Globalization;
using System.Text.RegularExpressions;
using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cli.Tests;

/// <summary>cnclip report over metrics.jsonl files in the trainer's format (TrainLog's train and valid lines).</summary>
public partial class ReportCommandTests
{
    static string Run(int steps, string? badLine = null)
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-report-run").FullName;
        var lines = new List<string> { """{"type":"resume","step":0,"epoch":0,"from":null,"world_size":2}""" };
        for (int step = 1; step <= steps; step++)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $$"""{"type":"train","step":{{step}},"epoch":1,"loss":{{4.0 / step}},"i2t_acc":0.1,"t2i_acc":0.1,"lr":{{step * 1e-5}},"logit_scale":4.6,"data_time":0.01,"batch_time":0.2,"compute_time":0.19,"allreduce_time":0}"""));
            if (step % 5 == 0)
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $$"""{"type":"valid","step":{{step}},"epoch":1,"epoch_end":true,"t2i":{"R1":{{step}},"R5":{{step + 10}},"R10":{{step + 20}},"Mean":1},"i2t":{"R1":1,"R5":2,"R10":3,"Mean":2},"mean_recall":{{step * 2}}}"""));
            if (step == 3 && badLine is not null) lines.Add(badLine);
        }
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), lines);
        return dir;
    }

    [GeneratedRegex("<polyline data-series=\"([^\"]+)\"[^>]* points=\"([^\"]+)\"")]
    private static partial Regex Polyline();

    [Fact]
    public void A_run_becomes_one_page_with_a_curve_per_logged_series()
    {
        string run = Run(10), output = Path.Combine(run, "out", "report.html");
        var r = CliRunner.Run("report", run, "--output", output);
        Assert.True(r.ExitCode == 0, r.Error);
        string html = File.ReadAllText(output);
        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.DoesNotContain("<script", html);
        Assert.Equal(3, Regex.Matches(html, "<svg ").Count);
        var curves = Polyline().Matches(html).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Split(' ')
            .Select(p => p.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray());
        Assert.Equal(10, curves["loss"].Length);
        Assert.Equal(10, curves["lr"].Length);
        Assert.Equal(2, curves["mean recall"].Length);
        // The loss falls (1/step), so its polyline goes down the page (SVG y grows downwards); the lr rises.
        Assert.True(curves["loss"].Zip(curves["loss"].Skip(1)).All(p => p.Second[1] > p.First[1] && p.Second[0] > p.First[0]));
        Assert.True(curves["lr"].Zip(curves["lr"].Skip(1)).All(p => p.Second[1] < p.First[1]));
        Assert.Contains("best mean recall 20.00", html);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(output)!, "*.tmp"));
        Directory.Delete(run, true);
    }

    [Fact]
    public void A_bad_metrics_line_is_named_by_file_and_line_and_the_rest_is_drawn()
    {
        string run = Run(6, badLine: """{"type":"train","step":"<b>three</b>""");
        string output = Path.Combine(run, "report.html");
        var r = CliRunner.Run("report", run, "--output", output);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains($"{Path.Combine(run, "metrics.jsonl")}:5", r.Error);
        string html = File.ReadAllText(output);
        Assert.Contains("metrics.jsonl:5", html);
        Assert.DoesNotContain("<b>three</b>", html); // text from files is escaped
        Assert.Equal(6, Polyline().Matches(html).Single(m => m.Groups[1].Value == "loss").Groups[2].Value.Split(' ').Length);
        Directory.Delete(run, true);
    }

    [Fact]
    public async Task A_schedule_gets_a_section_per_stage_with_metrics()
    {
        string first = Run(10), second = Run(5);
        var fake = new FakeCoordinator
        {
            Answer = new ScheduleStatus
            {
                Id = "s-1", State = RunState.Running, Schedule = new Schedule { Name = "three-stage" },
                Stages =
                {
                    new StageStatus { Name = "muge", State = RunState.Succeeded, RunDir = first },
                    new StageStatus { Name = "flickr", State = RunState.Running, RunDir = second },
                    new StageStatus { Name = "private", State = RunState.Pending },
                },
            },
        };
        await using var host = await CoordinatorHost.StartAsync(fake);
        string output = Path.Combine(first, "schedule.html");
        var r = ClusterCli.Run("report", "s-1", "--output", output, "--coordinator", host.Address);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("stage private", r.Error);
        string html = File.ReadAllText(output);
        Assert.Contains("Stage muge", html);
        Assert.Contains("Stage flickr", html);
        Assert.DoesNotContain("Stage private", html);
        Assert.Equal(6, Regex.Matches(html, "<svg ").Count);
        Directory.Delete(first, true);
        Directory.Delete(second, true);
    }

    [Fact]
    public void A_resumed_run_s_repeated_steps_replace_the_earlier_ones()
    {
        string run = Run(10);
        // The run stopped after step 10 and resumed from its step-6 checkpoint: steps 7-10 are logged again.
        File.AppendAllLines(Path.Combine(run, "metrics.jsonl"), Enumerable.Range(7, 4).Select(step => string.Create(CultureInfo.InvariantCulture,
            $$"""{"type":"train","step":{{step}},"epoch":1,"loss":{{9.0 / step}},"lr":{{step * 1e-5}}}""")).Prepend("""{"type":"resume","step":6,"epoch":0,"from":"x","world_size":1}"""));
        string output = Path.Combine(run, "report.html");
        Assert.Equal(0, CliRunner.Run("report", run, "--output", output).ExitCode);
        var xs = Polyline().Matches(File.ReadAllText(output)).Single(m => m.Groups[1].Value == "loss").Groups[2].Value.Split(' ')
            .Select(p => double.Parse(p.Split(',')[0], CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(10, xs.Length);
        Assert.True(xs.Zip(xs.Skip(1)).All(p => p.Second > p.First), "the curve goes back in steps");
        Directory.Delete(run, true);
    }

    [Fact]
    public void A_folder_without_metrics_is_one_line_and_exit_code_2()
    {
        string empty = Directory.CreateTempSubdirectory("cnclip-report-empty").FullName;
        var r = CliRunner.Run("report", empty, "--output", Path.Combine(empty, "r.html"));
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("metrics.jsonl", Assert.Single(r.Error.TrimEnd('\n').Split('\n')));
        Assert.False(File.Exists(Path.Combine(empty, "r.html")));
        Directory.Delete(empty, true);
    }
}
