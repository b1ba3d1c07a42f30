// Deploys a stage schedule's checkpoint to a collection: the checkpoint, arch and vocab come from the coordinator's
// status of the schedule (StageStatus.best_checkpoint), never from guessed file names. The collection is embedded again
// in the background into a new version (or built from Search:Images when it does not exist yet) and swapped in
// atomically; searches keep answering from the old version meanwhile.
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Search;
using ChineseClip.SearchService.Extensions;
using Grpc.Core;

namespace ChineseClip.SearchService.Serving;

/// <summary>A request that cannot be served: the HTTP status and one line saying why.</summary>
public sealed class ApiException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

public sealed class Deployer(ServedCollections collections, ModelHosts hosts, CoordinatorChannel coordinator, IServiceProvider services, ILogger<Deployer> log)
    : IDisposable
{
    /// <summary>Deploys under way: waited for when the service stops, so that none writes into the collection's folder
    /// (or loads a model into hosts being disposed) afterwards.</summary>
    readonly List<Task> _running = [];

    public sealed record Plan(ServedCollection Collection, ModelInfo Model);

    /// <summary>Which checkpoint <paramref name="scheduleId"/>'s stage (default: its last) deploys to the collection.</summary>
    public async Task<Plan> PlanAsync(string collectionName, string scheduleId, string? stageName, CancellationToken cancel)
    {
        if (string.IsNullOrWhiteSpace(scheduleId)) throw new ApiException(400, "schedule_id: missing");
        var options = services.Options();
        ServedCollection? collection = collections.Find(collectionName);
        if (collection is null && (collectionName != options.Collection || options.Images is null))
            throw new ApiException(404, $"collection '{collectionName}': unknown (a deploy creates only Search:Collection '{options.Collection}', from Search:Images)");
        ScheduleStatus status;
        try
        {
            status = await coordinator.Client.GetScheduleAsync(new GetScheduleRequest { Id = scheduleId }, cancellationToken: cancel);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            throw new ApiException(404, $"schedule '{scheduleId}': not found on the coordinator at {coordinator.Address}");
        }
        catch (RpcException e)
        {
            throw new ApiException(502, $"the coordinator at {coordinator.Address} answered {e.StatusCode}: {e.Status.Detail}");
        }
        int index = stageName is null ? status.Stages.Count - 1 : status.Stages.ToList().FindIndex(s => s.Name == stageName);
        if (index < 0)
            throw new ApiException(404, $"schedule '{scheduleId}' has no stage '{stageName}' (stages: {string.Join(", ", status.Stages.Select(s => s.Name))})");
        StageStatus stage = status.Stages[index];
        if (stage.State != RunState.Succeeded || stage.BestCheckpoint.Length == 0)
            throw new ApiException(409, $"schedule '{scheduleId}' stage '{stage.Name}' is {stage.State} with no best checkpoint to deploy yet");
        Stage definition = status.Schedule.Stages[index];
        int contextLength = definition.Hyperparameters.TryGetValue("context_length", out string? text) && int.TryParse(text, out int n)
            ? n : Model.Text.ClipTokenizer.DefaultContextLength;
        double? recall = stage.Progress is { T2IRecall.Count: > 0 } p ? p.MeanRecall : null;
        try
        {
            var model = ModelInfo.Of(stage.BestCheckpoint, definition.Arch, definition.Vocab, contextLength, scheduleId, stage.Name, recall);
            return new Plan(collection ?? collections.GetOrAdd(collectionName), model);
        }
        catch (FileNotFoundException e)
        {
            throw new ApiException(409, $"schedule '{scheduleId}' stage '{stage.Name}': {e.Message}");
        }
    }

    /// <summary>Starts the deploy in the background; the collection's Deploy tells how it goes.</summary>
    public DeployStatus Start(Plan plan)
    {
        var collection = plan.Collection;
        var status = new DeployStatus
        {
            State = "running", Schedule = plan.Model.Schedule ?? "", Stage = plan.Model.Stage ?? "", Checkpoint = plan.Model.Checkpoint,
            Started = DateTimeOffset.UtcNow,
        };
        lock (collection)
        {
            if (collection.Deploy is { State: "running" } running)
                throw new ApiException(409, $"collection '{collection.Name}': a deploy of schedule '{running.Schedule}' is running");
            collection.Deploy = status;
        }
        var task = Task.Run(() => Run(plan, status));
        lock (_running)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(task);
        }
        return status;
    }

    public void Dispose()
    {
        Task[] running;
        lock (_running) running = [.. _running];
        try
        {
            if (!Task.WaitAll(running, TimeSpan.FromMinutes(2))) log.LogWarning("stopping while a deploy is still running");
        }
        catch (AggregateException) { } // a deploy's failure is in its collection's status already
    }

    async Task Run(Plan plan, DeployStatus status)
    {
        var collection = plan.Collection;
        var options = services.Options();
        int rejected = 0;
        void Reject(string problem)
        {
            Interlocked.Increment(ref rejected);
            log.LogWarning("deploy to {Collection}: {Problem}", collection.Name, problem);
        }
        await collection.WriteLock.WaitAsync();
        try
        {
            var embedder = hosts.Get(plan.Model).Embedder;
            var build = new BuildOptions { Threads = options.DeployThreads ?? Math.Max(1, options.Threads / 2) };
            if (collection.Current is { } current) CollectionBuilder.Reembed(current, embedder, build, Reject);
            else CollectionBuilder.Add(collection.Folder, collection.Name, embedder, ImageSources.Open(options.Images!, null, Reject), build, Reject);
            collections.Publish(collection);
            collection.Deploy = status with { State = "succeeded", Finished = DateTimeOffset.UtcNow, ImagesRejected = rejected };
            log.LogInformation("collection {Collection} now serves {Checkpoint} (schedule {Schedule}, stage {Stage})",
                collection.Name, plan.Model.Checkpoint, plan.Model.Schedule, plan.Model.Stage);
        }
        catch (Exception e)
        {
            collection.Deploy = status with { State = "failed", Finished = DateTimeOffset.UtcNow, Error = e.Message, ImagesRejected = rejected };
            log.LogError("deploy to {Collection} failed: {Error}", collection.Name, e.Message);
        }
        finally
        {
            collection.WriteLock.Release();
        }
    }
}

/// <summary>Search:Follow: deploys the newest schedule the coordinator reports SUCCEEDED (its last stage's best
/// checkpoint) to Search:Collection, once per schedule.</summary>
public sealed class Follower(IServiceProvider services, Deployer deployer, ServedCollections collections, CoordinatorChannel coordinator, ILogger<Follower> log) : BackgroundService
{
    readonly HashSet<string> _tried = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        var options = services.Options();
        if (!options.Follow) return;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await CheckAsync(options, stop);
            }
            catch (RpcException e)
            {
                log.LogDebug("coordinator not answering: {Status}", e.StatusCode);
            }
            catch (ApiException e)
            {
                log.LogWarning("follow: {Error}", e.Message);
            }
            try { await Task.Delay(TimeSpan.FromSeconds(options.FollowIntervalSeconds), stop); }
            catch (OperationCanceledException) { return; }
        }
    }

    async Task CheckAsync(SearchOptions options, CancellationToken stop)
    {
        var list = await coordinator.Client.ListSchedulesAsync(new ListSchedulesRequest(), cancellationToken: stop);
        var newest = list.Schedules.Where(s => s.State == RunState.Succeeded).MaxBy(s => s.Updated?.ToDateTimeOffset() ?? DateTimeOffset.MinValue);
        if (newest is null || _tried.Contains(newest.Id)) return;
        var served = collections.Find(options.Collection);
        if (served?.Current?.Manifest.Model.Schedule == newest.Id) { _tried.Add(newest.Id); return; }
        _tried.Add(newest.Id);
        var plan = await deployer.PlanAsync(options.Collection, newest.Id, null, stop);
        deployer.Start(plan);
        log.LogInformation("follow: deploying schedule {Schedule} to collection {Collection}", newest.Id, options.Collection);
    }
}
