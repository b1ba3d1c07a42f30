using System.Diagnostics;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using ChineseClip.Contracts.Coordinator;

namespace ChineseClip.Cluster.Tests;

[Collection("cluster")]
public class FaultTests(ClusterFixture cluster)
{
    Schedule LongStage(string name) => new()
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
                    ["batch_size"] = "16", ["max_epochs"] = "10", ["lr"] = "0.002", ["warmup"] = "2", ["log_interval"] = "1",
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
            Assert.True(s.State is RunState.Pending or RunState.Running, $"the schedule ended early: {s.State} {s.Error}");
        }
        throw new TimeoutException($"schedule {id} never reached step {step}");
    }

    static List<JsonElement> Metrics(StageStatus stage) =>
        File.ReadLines(Path.Combine(stage.RunDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public async Task A_worker_killed_mid_stage_does_not_stop_the_schedule_and_no_step_is_lost()
    {
        var submitted = await cluster.Client.SubmitScheduleAsync(new SubmitScheduleRequest { Schedule = LongStage("kill a worker") });
        await WaitForStep(submitted.Id, 5);
        var victim = (await cluster.Client.ListWorkersAsync(new ListWorkersRequest())).Workers.Single(w => w.Name == "worker-1");
        Process.GetProcessById(victim.Pid).Kill(); // SIGKILL: no goodbye

        var done = await cluster.WaitUntilOver(submitted.Id);
        var stage = done.Stages[0];
        Assert.True(done.State == RunState.Succeeded, $"{done.State}: {done.Error}");
        Assert.True(stage.Recoveries >= 1, "the stage was not re-formed");
        // Either the coordinator saw worker-1's stream end first, or worker-0 first reported its ring link to rank 1 lost.
        Assert.Matches("worker-1|rank 1", stage.LastRecovery);
        Assert.Equal(["worker-0"], stage.Members);
        Assert.Equal(32, stage.GlobalBatch);
        Assert.Equal(stage.Progress.Steps, stage.Progress.Step);

        // Every optimiser step of the stage is in the final weights exactly once: steps 1..k before the checkpoint the
        // recovery resumed from, then k+1..end after it.
        var metrics = Metrics(stage);
        var resume = metrics.Last(m => m.GetProperty("type").GetString() == "resume");
        int k = resume.GetProperty("step").GetInt32();
        Assert.True(k >= 3, $"resumed at step {k}, not from a step checkpoint");
        Assert.Equal(1, resume.GetProperty("world_size").GetInt32());
        int at = metrics.IndexOf(resume);
        var before = metrics.Take(at).Where(m => m.GetProperty("type").GetString() == "train").Select(m => m.GetProperty("step").GetInt32()).ToList();
        var after = metrics.Skip(at).Where(m => m.GetProperty("type").GetString() == "train").Select(m => m.GetProperty("step").GetInt32()).ToList();
        Assert.Equal(Enumerable.Range(1, k), before.Where(s => s <= k).Distinct());
        Assert.Equal(Enumerable.Range(k + 1, (int)stage.Progress.Steps - k), after);

        // The killed worker comes back and joins again.
        await cluster.App.ResourceCommands.ExecuteCommandAsync("worker-1", KnownResourceCommands.StartCommand).WaitAsync(ClusterFixture.Patience);
        await cluster.WaitForWorkers(2);
    }
}
