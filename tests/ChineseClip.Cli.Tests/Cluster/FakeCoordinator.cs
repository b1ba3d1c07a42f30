// A test double of the coordinator for the cluster verbs' tests: it records every call (with its token header) and
// answers with canned statuses or a canned gRPC error. The real coordinator is tested by the cluster's functional tests.
using System.Net;
using ChineseClip.Cli.Cluster;
using ChineseClip.Contracts.Coordinator;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ChineseClip.Cli.Tests.Cluster;

public sealed class FakeCoordinator : Coordinator.CoordinatorBase
{
    public sealed record Call(string Method, IMessage Request, string? Token);

    readonly List<Call> _calls = [];

    /// <summary>What SubmitSchedule, GetSchedule and CancelSchedule answer.</summary>
    public ScheduleStatus Answer { get; set; } = new();
    /// <summary>When set, every call fails with it.</summary>
    public RpcException? Refusal { get; set; }
    /// <summary>What WatchSchedule streams before it ends.</summary>
    public List<ScheduleStatus> Updates { get; } = [];
    public List<WorkerInfo> Workers { get; } = [];
    public List<ScheduleStatus> Schedules { get; } = [];

    public IReadOnlyList<Call> Calls
    {
        get { lock (_calls) return [.. _calls]; }
    }

    void Record(string method, IMessage request, ServerCallContext context)
    {
        lock (_calls) _calls.Add(new Call(method, request, context.RequestHeaders.GetValue(CoordinatorClient.TokenHeader)));
        if (Refusal is not null) throw Refusal;
    }

    Task<T> Reply<T>(string method, IMessage request, ServerCallContext context, T answer)
    {
        Record(method, request, context);
        return Task.FromResult(answer);
    }

    public override Task<ScheduleStatus> SubmitSchedule(SubmitScheduleRequest request, ServerCallContext context) =>
        Reply(nameof(SubmitSchedule), request, context, Answer);

    public override Task<ScheduleStatus> GetSchedule(GetScheduleRequest request, ServerCallContext context) =>
        Reply(nameof(GetSchedule), request, context, Answer);

    public override Task<ScheduleStatus> CancelSchedule(GetScheduleRequest request, ServerCallContext context) =>
        Reply(nameof(CancelSchedule), request, context, Answer);

    public override Task<ListSchedulesResponse> ListSchedules(ListSchedulesRequest request, ServerCallContext context) =>
        Reply(nameof(ListSchedules), request, context, new ListSchedulesResponse { Schedules = { Schedules } });

    public override Task<ListWorkersResponse> ListWorkers(ListWorkersRequest request, ServerCallContext context) =>
        Reply(nameof(ListWorkers), request, context, new ListWorkersResponse { Workers = { Workers } });

    public override async Task WatchSchedule(GetScheduleRequest request, IServerStreamWriter<ScheduleStatus> responseStream, ServerCallContext context)
    {
        Record(nameof(WatchSchedule), request, context);
        foreach (var update in Updates) await responseStream.WriteAsync(update);
    }
}

/// <summary>Hosts a <see cref="FakeCoordinator"/> with Kestrel on a free loopback port, HTTP/2 without TLS (as the
/// real coordinator listens).</summary>
public sealed class CoordinatorHost : IAsyncDisposable
{
    readonly WebApplication _app;

    CoordinatorHost(WebApplication app, string address) => (_app, Address) = (app, address);

    public string Address { get; }

    public static async Task<CoordinatorHost> StartAsync(FakeCoordinator coordinator)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(coordinator);
        var app = builder.Build();
        app.MapGrpcService<FakeCoordinator>();
        await app.StartAsync();
        return new CoordinatorHost(app, app.Urls.Single());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
