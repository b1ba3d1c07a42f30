using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ChineseClip.Contracts.Coordinator;
using Grpc.Core;
using Grpc.Net.Client;

namespace ChineseClip.Cluster.Tests;

/// <summary>`dotnet run --project ChineseClip.AppHost` typed into a terminal, stopped with Ctrl+C in the middle of a
/// schedule and typed again, in each Redis mode this machine has (the embedded Garnet and redis-server): every process
/// the first run started is gone within 30 s, the second run starts cleanly on the same ports, `cnclip status` shows
/// the schedule with its stages (kept by Redis in the runs folder), and the coordinator carries the unfinished stage on
/// from its newest checkpoint to the schedule's end, every step once.</summary>
[Collection("cluster")]
public sealed class RestartTests(ClusterFixture cluster) : IDisposable
{
    static readonly TimeSpan StopWithin = TimeSpan.FromSeconds(30);
    // The http launch profile's dashboard, OTLP and resource-service ports, and the coordinator's gRPC port.
    static readonly int[] FixedPorts = [15888, 19999, 20000, 5290];
    readonly string _runs = Directory.CreateTempSubdirectory("cnclip-restart-runs").FullName;

    [Theory]
    [InlineData("garnet")]
    [InlineData("executable")]
    public async Task Ctrl_C_stops_every_process_and_a_second_dotnet_run_continues_the_unfinished_schedule(string redis)
    {
        Directory.CreateDirectory(ClusterFixture.LogDirectory);
        using var terminal = new TerminalSession(ServiceProcesses.RepositoryRoot(), Path.Combine(ClusterFixture.LogDirectory, $"ctrl-c-{redis}-terminal.log"));
        string run = $"dotnet run --no-build --project ChineseClip.AppHost -- Cluster:RunsDirectory={_runs} Cluster:Redis={redis} "
            + "Cluster:Demo=false Cluster:ThreadsPerWorker=1";
        using var channel = GrpcChannel.ForAddress("http://127.0.0.1:5290");
        var client = new Coordinator.CoordinatorClient(channel);

        terminal.Type(run);
        await WaitForFreeWorkers(client, terminal, 2);
        var schedule = new Schedule { Name = $"restart {redis}" };
        schedule.Stages.Add(cluster.DemoStage("long", "stage1-muge", StageInit.InitScratch, 3));
        schedule.Stages[0].Hyperparameters["save_step_frequency"] = "3";
        schedule.Stages[0].Hyperparameters["log_interval"] = "1";
        schedule.Stages.Add(cluster.DemoStage("short", "stage2-flickr", StageInit.InitBestOfPrevious, 1));
        schedule.Stages[1].Hyperparameters["log_interval"] = "1";
        string id = (await client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = schedule })).Id;
        await Until(terminal, "the first stage wrote a checkpoint", async () =>
        {
            var stage = (await client.GetScheduleAsync(new GetScheduleRequest { Id = id })).Stages[0];
            return stage.Progress?.Step >= 4 && Directory.Exists(Path.Combine(stage.RunDir, "checkpoints"))
                && Directory.EnumerateFiles(Path.Combine(stage.RunDir, "checkpoints"), "*.pt").Any();
        });

        await CtrlCStopsEverything(terminal, "mid-schedule");

        terminal.Type(run);
        await WaitForFreeWorkers(client, terminal, 2, allowBusy: true);
        var status = CnclipStatus(id);
        Assert.True(status.ExitCode == 0, $"cnclip status {id}: exit {status.ExitCode}: {status.Output}");
        Assert.Contains($"restart {redis}", status.Output);
        Assert.Contains("long", status.Output);
        Assert.Contains("short", status.Output);

        ScheduleStatus done = null!;
        await Until(terminal, "the schedule ended", async () =>
        {
            done = await client.GetScheduleAsync(new GetScheduleRequest { Id = id });
            return done.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled;
        });
        Assert.True(done.State == RunState.Succeeded, $"{done.State}: {done.Error}");
        var resumes = StageChecks.AssertEveryStepOnce(done.Stages[0]);
        Assert.True(resumes.Count >= 1 && resumes[0].GetProperty("step").GetInt32() >= 3, $"the first stage did not resume from a checkpoint: {done.Stages[0]}");
        Assert.Equal(done.Stages[0].BestCheckpoint, done.Stages[1].InitCheckpoint);
        StageChecks.AssertEveryStepOnce(done.Stages[1]);

        await CtrlCStopsEverything(terminal, "after the schedule");
        Assert.DoesNotContain("address already in use", terminal.Log(), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Presses Ctrl+C and checks that every process the command started (the AppHost, DCP, which runs apart
    /// from it, and every resource under DCP) is gone within <see cref="StopWithin"/> and the fixed ports are free.</summary>
    static async Task CtrlCStopsEverything(TerminalSession terminal, string when)
    {
        var started = terminal.Started();
        Assert.Contains(started, p => p.CommandLine.Contains("dcp", StringComparison.Ordinal)); // the snapshot reaches past the AppHost
        terminal.PressCtrlC();
        var watch = Stopwatch.StartNew();
        while (started.Any(p => p.Alive) && watch.Elapsed < StopWithin * 2) await Task.Delay(250);
        var left = started.Where(p => p.Alive).ToList();
        Console.WriteLine($"Ctrl+C {when}: {started.Count} processes, {(left.Count == 0 ? $"all gone after {watch.Elapsed.TotalSeconds:F1} s" : $"{left.Count} left")}");
        Assert.True(left.Count == 0, $"Ctrl+C {when}: still running after {watch.Elapsed.TotalSeconds:F0} s:\n{string.Join("\n", left)}\n{Tail(terminal)}");
        Assert.True(watch.Elapsed <= StopWithin, $"Ctrl+C {when}: the last process ended after {watch.Elapsed.TotalSeconds:F1} s");
        foreach (int port in FixedPorts)
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            try { listener.Start(); }
            catch (SocketException e) { Assert.Fail($"Ctrl+C {when}: port {port} is still taken ({e.SocketErrorCode})"); }
        }
    }

    static async Task WaitForFreeWorkers(Coordinator.CoordinatorClient client, TerminalSession terminal, int count, bool allowBusy = false) =>
        await Until(terminal, $"{count} workers joined", async () =>
        {
            var workers = (await client.ListWorkersAsync(new ListWorkersRequest())).Workers;
            return workers.Count >= count && (allowBusy || workers.All(w => w.BusyWith.Length == 0));
        });

    /// <summary>Polls <paramref name="condition"/> (a coordinator not answering yet counts as false) while the command runs.</summary>
    static async Task Until(TerminalSession terminal, string what, Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + ClusterFixture.Patience;
        while (!await Answered(condition))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what}: not within {ClusterFixture.Patience.TotalMinutes} minutes\n{Tail(terminal)}");
            Assert.True(terminal.Foreground().Count > 0, $"{what}: the command ended\n{Tail(terminal)}");
            await Task.Delay(500);
        }
    }

    static async Task<bool> Answered(Func<Task<bool>> condition)
    {
        try { return await condition(); }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable) { return false; }
    }

    static string Tail(TerminalSession terminal) => string.Join("\n", terminal.Log().Split('\n').TakeLast(30));

    static (int ExitCode, string Output) CnclipStatus(string id)
    {
        var start = new ProcessStartInfo(ServiceProcesses.Executable("ChineseClip.Cli", "cnclip")) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("status");
        start.ArgumentList.Add(id);
        using var cnclip = Process.Start(start)!;
        var error = cnclip.StandardError.ReadToEndAsync();
        string output = cnclip.StandardOutput.ReadToEnd();
        cnclip.WaitForExit();
        return (cnclip.ExitCode, output + error.Result);
    }


    public void Dispose()
    {
        try { Directory.Delete(_runs, recursive: true); } catch (IOException) { }
    }
}
