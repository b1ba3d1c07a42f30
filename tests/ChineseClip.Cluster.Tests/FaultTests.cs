using System.Diagnostics;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Aspire.Hosting.ApplicationModel;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cluster.Tests;

[Collection("cluster")]
public class FaultTests(ClusterFixture cluster)
{
    Schedule LongStage(string name, int epochs = 10) => new()
    {
        Name = name,
        Stages =
        {
            new Stage
            {
                Name = "muge", TrainData = Path.Combine(cluster.Demo, "stage1-muge"), ValData = Path.Combine(cluster.Demo, "stage1-muge"),
                Arch = Path.Combine(cluster.Demo, "tiny-arch.json"), Vocab = Path.Combine(cluster.Demo, "vocab.txt"), Init = StageInit.InitScratch,
                Hyperparameters =
                {
                    ["batch_size"] = "16", ["max_epochs"] = $"{epochs}", ["lr"] = "0.002", ["warmup"] = "2", ["log_interval"] = "1",
                    ["save_step_frequency"] = "3",
                },
            },
        },
    };

    async Task<ScheduleStatus> WaitForStep(string id, long step)
    {
        using var cancel = new CancellationTokenSource(ClusterFixture.Patience);
        using var watch = cluster.Client.WatchSchedule(new GetScheduleRequest { Id = id }, cancellationToken: cancel.Token);
        while (await watch.ResponseStream.MoveNext(cancel.Token))
        {
            var s = watch.ResponseStream.Current;
            if (s.Stages[0].State == RunState.Running && s.Stages[0].Progress?.Step >= step) return s;
            Assert.True(s.State is RunState.Pending or RunState.Running, $"the schedule ended early: {s.State} {s.Error}\n{ClusterFixture.WorkerErrors()}");
        }
        throw new TimeoutException($"schedule {id} never reached step {step}");
    }

    [Fact]
    public async Task A_worker_killed_mid_stage_does_not_stop_the_schedule_and_no_step_is_lost()
    {
        var submitted = await cluster.Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = LongStage("kill a worker") });
        await WaitForStep(submitted.Id, 5);
        var victim = (await cluster.Client.ListWorkersAsync(new ListWorkersRequest())).Workers.Single(w => w.Name == "worker-1");
        Process.GetProcessById(victim.Pid).Kill(); // SIGKILL: no goodbye

        var done = await cluster.WaitUntilOver(submitted.Id);
        var stage = done.Stages[0];
        Assert.True(done.State == RunState.Succeeded, $"{done.State}: {done.Error}\n{ClusterFixture.WorkerErrors()}");
        Assert.True(stage.Recoveries >= 1, "the stage was not re-formed");
        // Either the coordinator saw worker-1's stream end first, or worker-0 first reported its ring link to rank 1 lost.
        Assert.Matches("worker-1|rank 1", stage.LastRecovery);
        Assert.Equal(["worker-0"], stage.Members);
        Assert.Equal(32, stage.GlobalBatch);
        Assert.Equal(stage.Progress.Steps, stage.Progress.Step);

        // Re-formed from a checkpoint (save_step_frequency 3, killed after step 5), not restarted from scratch.
        var resumes = StageChecks.AssertEveryStepOnce(stage);
        Assert.NotEmpty(resumes);
        Assert.True(resumes[0].GetProperty("step").GetInt32() >= 1, $"the stage restarted from scratch: {resumes[0]}");

        // The killed worker comes back and joins again.
        await cluster.App.ResourceCommands.ExecuteCommandAsync("worker-1", KnownResourceCommands.StartCommand).WaitAsync(ClusterFixture.Patience);
        await cluster.WaitForWorkers(2);
    }

    [Fact]
    public async Task A_worker_that_comes_back_mid_stage_rejoins_it_at_the_next_checkpoint()
    {
        var submitted = await cluster.Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = LongStage("come back", epochs: 20) });
        await WaitForStep(submitted.Id, 5);
        var victim = (await cluster.Client.ListWorkersAsync(new ListWorkersRequest())).Workers.Single(w => w.Name == "worker-1");
        Process.GetProcessById(victim.Pid).Kill();
        var deadline = DateTime.UtcNow + ClusterFixture.Patience;
        while (await cluster.Client.GetScheduleAsync(new GetScheduleRequest { Id = submitted.Id }) is not { Stages: [{ State: RunState.Running, Members.Count: 1 }] })
        {
            Assert.True(DateTime.UtcNow < deadline, "the stage was not re-formed on worker-0 alone");
            await Task.Delay(200);
        }

        // worker-1 comes back: here a process started by the test, since Aspire's start command rebuilds the project
        // (rewriting the build folder that worker-0 runs from).
        var start = new ProcessStartInfo(ServiceProcesses.Executable("ChineseClip.Worker")) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.WorkingDirectory = Path.GetDirectoryName(start.FileName)!;
        start.Environment["Worker__Coordinator"] = cluster.App.GetEndpoint("coordinator", "grpc").ToString().TrimEnd('/');
        start.Environment["Worker__Name"] = "worker-1";
        start.Environment["Worker__Threads"] = "1";
        using var comeback = Process.Start(start)!;
        comeback.OutputDataReceived += (_, _) => { };
        comeback.ErrorDataReceived += (_, _) => { };
        comeback.BeginOutputReadLine();
        comeback.BeginErrorReadLine();
        try
        {
            var done = await cluster.WaitUntilOver(submitted.Id);
            var stage = done.Stages[0];
            Assert.True(done.State == RunState.Succeeded, $"{done.State}: {done.Error}\n{ClusterFixture.WorkerErrors()}");
            Assert.True(stage.Grown >= 1, $"the stage never grew back ({stage.Recoveries} re-forms, last: {stage.LastRecovery})");
            Assert.Equal(["worker-0", "worker-1"], stage.Members);
            var resumes = StageChecks.AssertEveryStepOnce(stage);
            Assert.Equal(2, resumes.Last().GetProperty("world_size").GetInt32());
        }
        finally
        {
            comeback.Kill(entireProcessTree: true);
            comeback.WaitForExit();
        }
        await cluster.App.ResourceCommands.ExecuteCommandAsync("worker-1", KnownResourceCommands.StartCommand).WaitAsync(ClusterFixture.Patience);
        await cluster.WaitForWorkers(2);
    }
}
