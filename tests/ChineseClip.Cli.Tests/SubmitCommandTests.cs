using ChineseClip.Cli.Cluster;
using ChineseClip.Cli.Tests.Cluster;
using ChineseClip.Contracts.Coordinator;
using Grpc.Core;

namespace ChineseClip.Cli.Tests;

/// <summary>cnclip submit against <see cref="FakeCoordinator"/>; the real coordinator is tested by the cluster's functional tests.</summary>
public class SubmitCommandTests
{
    static string WriteSchedule(string extension, string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"cnclip-schedule-{Guid.NewGuid():N}{extension}");
        File.WriteAllText(path, text);
        return path;
    }

    const string Plan = """
        name: demo
        stages:
          - name: muge
            train_data: /data/muge
            init: pretrained
            pretrained: /models/vit-b-16.pt
            hyperparameters: {lr: 5e-5, batch_size: 64}
          - name: flickr
            train_data: /data/flickr
            init: best-of-previous
        """;

    [Fact]
    public async Task Submit_sends_the_parsed_schedule_and_prints_the_new_id_first()
    {
        var fake = new FakeCoordinator { Answer = new ScheduleStatus { Id = "s-42", State = RunState.Pending } };
        await using var host = await CoordinatorHost.StartAsync(fake);
        string file = WriteSchedule(".yaml", Plan);
        try
        {
            var r = ClusterCli.Run("submit", file, "--coordinator", host.Address);
            Assert.True(r.ExitCode == 0, r.Error);
            Assert.Equal("s-42", r.OutLines[0]);
            Assert.Equal("\"demo\": 2 stage(s): muge (init pretrained), flickr (init best-of-previous); PENDING", r.OutLines[1]);
            var call = Assert.Single(fake.Calls);
            Assert.Equal("SubmitSchedule", call.Method);
            Assert.Null(call.Token);
            var sent = ((SubmitScheduleRequest)call.Request).Schedule;
            Assert.Equal(ScheduleFile.Parse(Plan, yaml: true, "plan"), sent);
            Assert.Equal("5e-5", sent.Stages[0].Hyperparameters["lr"]);
            Assert.Equal(StageInit.InitBestOfPrevious, sent.Stages[1].Init);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task The_coordinators_invalid_argument_is_one_line_with_exit_code_2()
    {
        var fake = new FakeCoordinator { Refusal = new RpcException(new Status(StatusCode.InvalidArgument, "stage 2 \"flickr\": train_data /data/flickr is not a folder")) };
        await using var host = await CoordinatorHost.StartAsync(fake);
        string file = WriteSchedule(".yaml", Plan);
        try
        {
            var r = ClusterCli.Run("submit", file, "--coordinator", host.Address);
            Assert.Equal(ExitCodes.BadInput, r.ExitCode);
            Assert.Equal("cnclip: error: stage 2 \"flickr\": train_data /data/flickr is not a folder\n", r.Error);
            Assert.Empty(r.Out);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_bad_file_is_refused_before_anything_is_sent()
    {
        var fake = new FakeCoordinator();
        await using var host = await CoordinatorHost.StartAsync(fake);
        string file = WriteSchedule(".json", """{"name": "x", "stages": [{"name": "a", "init": "warm"}]}""");
        try
        {
            var r = ClusterCli.Run("submit", file, "--coordinator", host.Address);
            Assert.Equal(ExitCodes.BadInput, r.ExitCode);
            Assert.StartsWith($"cnclip: error: {file}: stages[0].init: unknown value 'warm'", r.Error);
            Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
            Assert.Empty(fake.Calls);

            var missing = ClusterCli.Run("submit", file + ".missing", "--coordinator", host.Address);
            Assert.Equal(ExitCodes.BadInput, missing.ExitCode);
            Assert.Equal($"cnclip: error: {file}.missing: schedule file not found\n", missing.Error);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task The_token_and_the_address_come_from_the_environment()
    {
        var fake = new FakeCoordinator { Answer = new ScheduleStatus { Id = "s-1" } };
        await using var host = await CoordinatorHost.StartAsync(fake);
        string file = WriteSchedule(".yml", Plan);
        try
        {
            var environment = new Dictionary<string, string> { ["CNCLIP_COORDINATOR"] = host.Address, ["CNCLIP_TOKEN"] = "s3cret" };
            var r = CliRunner.RunWithEnvironment(environment, "submit", file);
            Assert.True(r.ExitCode == 0, r.Error);
            Assert.Equal("s-1", r.OutLines[0]);
            Assert.Equal("s3cret", Assert.Single(fake.Calls).Token);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
