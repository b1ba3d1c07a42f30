// The coordinator's gRPC surface (coordinator.proto): thin; the work is in Scheduling/.
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Coordinator.Extensions;
using ChineseClip.Coordinator.Scheduling;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace ChineseClip.Coordinator.Services;

public sealed class CoordinatorService(ScheduleStore store, WorkerRegistry workers, RendezvousTable rendezvous, StageRunner runner,
    IOptions<CoordinatorOptions> options, IHostApplicationLifetime lifetime, ILogger<CoordinatorService> log)
    : Contracts.Coordinator.Coordinator.CoordinatorBase
{
    // Long calls (Join, WatchSchedule, Rendezvous) end when the caller goes or when the coordinator shuts down;
    // otherwise a graceful stop would wait for streams that never end on their own.
    CancellationTokenSource CallOrShutdown(ServerCallContext context) =>
        CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);

    static bool IsOver(RunState s) => s is RunState.Succeeded or RunState.Failed or RunState.Cancelled;

    ScheduleStatus Find(string id) =>
        store.Get(id) ?? throw new RpcException(new Status(StatusCode.NotFound, $"schedule '{id}' not found"));

    public override async Task<ScheduleStatus> SubmitSchedule(SubmitScheduleRequest request, ServerCallContext context)
    {
        if (ScheduleValidator.FirstProblem(request.Schedule) is string problem)
            throw new RpcException(new Status(StatusCode.InvalidArgument, problem));
        var status = await runner.SubmitAsync(request.Schedule);
        log.LogInformation("Schedule {Id} '{Name}' submitted with {Stages} stage(s)", status.Id, status.Schedule.Name, status.Stages.Count);
        return status;
    }

    public override Task<ScheduleStatus> GetSchedule(GetScheduleRequest request, ServerCallContext context) => Task.FromResult(Find(request.Id));

    public override Task<ListSchedulesResponse> ListSchedules(ListSchedulesRequest request, ServerCallContext context)
    {
        var response = new ListSchedulesResponse();
        response.Schedules.AddRange(store.All());
        return Task.FromResult(response);
    }

    public override async Task WatchSchedule(GetScheduleRequest request, IServerStreamWriter<ScheduleStatus> responseStream, ServerCallContext context)
    {
        using var cancel = CallOrShutdown(context);
        while (!cancel.IsCancellationRequested)
        {
            var changed = store.Changed;
            var status = Find(request.Id);
            await responseStream.WriteAsync(status);
            if (IsOver(status.State)) return;
            try { await changed.WaitAsync(cancel.Token); } catch (OperationCanceledException) { return; }
        }
    }

    public override async Task<ScheduleStatus> CancelSchedule(GetScheduleRequest request, ServerCallContext context)
    {
        Find(request.Id);
        return await runner.CancelAsync(request.Id) ?? Find(request.Id);
    }

    public override Task<ListWorkersResponse> ListWorkers(ListWorkersRequest request, ServerCallContext context)
    {
        var response = new ListWorkersResponse();
        response.Workers.AddRange(workers.All().Select(w => new WorkerInfo(w.Info) { BusyWith = w.RunId ?? "" }));
        return Task.FromResult(response);
    }

    public override async Task Join(JoinRequest request, IServerStreamWriter<WorkerCommand> responseStream, ServerCallContext context)
    {
        if (string.IsNullOrWhiteSpace(request.Worker?.Name))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "worker.name: missing"));
        using var cancel = CallOrShutdown(context);
        var connection = workers.Join(request.Worker);
        log.LogInformation("Worker {Name} ({Device}) joined{Busy}", request.Worker.Name, request.Worker.Device,
            connection.RunId is null ? "" : $", still in run {connection.RunId}");
        try
        {
            await foreach (var command in connection.Commands.Reader.ReadAllAsync(cancel.Token))
                await responseStream.WriteAsync(command);
        }
        catch (OperationCanceledException) { }
        finally
        {
            workers.Leave(connection);
            log.LogInformation("Worker {Name} left", request.Worker.Name);
        }
    }

    public override async Task<RendezvousResponse> Rendezvous(RendezvousRequest request, ServerCallContext context)
    {
        Task<string[]> meeting;
        try
        {
            meeting = rendezvous.Arrive(request.RunId, request.Rank, request.Address);
        }
        catch (Exception e) when (e is KeyNotFoundException or ArgumentOutOfRangeException)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
        try
        {
            using var cancel = CallOrShutdown(context);
            var addresses = await meeting.WaitAsync(options.Value.RendezvousTimeout, cancel.Token);
            var response = new RendezvousResponse();
            response.Addresses.AddRange(addresses);
            return response;
        }
        catch (TimeoutException)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded,
                $"run {request.RunId}: not every rank reached the rendezvous within {options.Value.RendezvousTimeout.TotalSeconds:F0} s"));
        }
        catch (InvalidOperationException e)
        {
            throw new RpcException(new Status(StatusCode.Aborted, e.Message));
        }
    }

    public override async Task<Ack> ReportProgress(ProgressReport request, ServerCallContext context)
    {
        await runner.ProgressAsync(request);
        return new Ack();
    }

    public override async Task<Ack> ReportStageEnd(StageEndReport request, ServerCallContext context)
    {
        try
        {
            await runner.StageEndedAsync(request);
        }
        catch (Exception e) when (e is KeyNotFoundException or ArgumentException or FormatException)
        {
            throw new RpcException(new Status(StatusCode.NotFound, e.Message));
        }
        return new Ack();
    }
}
