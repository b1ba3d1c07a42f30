using System.Net;
using System.Net.Sockets;
using ChineseClip.Cli.Cluster;

namespace ChineseClip.Cli.Tests.Cluster;

public class CoordinatorClientTests
{
    static Func<string, string?> Environment(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void The_option_wins_over_the_environment_which_wins_over_the_default()
    {
        Assert.Equal(new CoordinatorTarget("http://127.0.0.1:5290", null), CoordinatorTarget.Resolve(null, Environment()));
        Assert.Equal(new CoordinatorTarget("http://coord:80", "t"),
            CoordinatorTarget.Resolve(null, Environment(("CNCLIP_COORDINATOR", "http://coord:80"), ("CNCLIP_TOKEN", "t"))));
        Assert.Equal(new CoordinatorTarget("http://other:1", null),
            CoordinatorTarget.Resolve("http://other:1", Environment(("CNCLIP_COORDINATOR", "http://coord:80"), ("CNCLIP_TOKEN", ""))));
        Assert.Equal(new CoordinatorTarget("http://127.0.0.1:5290", null), CoordinatorTarget.Resolve("", Environment(("CNCLIP_COORDINATOR", " "))));
    }

    [Fact]
    public void An_unreachable_coordinator_is_one_line_naming_its_address()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now

        var r = ClusterCli.Run("status", "--coordinator", $"http://127.0.0.1:{port}");

        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.StartsWith($"cnclip: error: cannot reach the coordinator at http://127.0.0.1:{port} (", r.Error);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.Empty(r.Out);
    }

    [Fact]
    public void An_address_that_is_not_http_is_refused()
    {
        var r = ClusterCli.Run("cancel", "s-1", "--coordinator", "coord:5290");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal("cnclip: error: coordinator address 'coord:5290': expected http://HOST:PORT (or https://)\n", r.Error);
    }

    [Fact]
    public void Durations_read_as_eta()
    {
        Assert.Equal(["0s", "42s", "1m05s", "59m59s", "1h00m", "26h03m"],
            new double[] { 0, 42, 65, 3599, 3600, 93780 }.Select(StatusFormat.Duration));
    }
}
