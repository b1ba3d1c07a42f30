// The coordinator's wiring: options, the schedule store (Redis), worker registry, rendezvous, the stage runner, the
// cluster-token check, and gRPC with health.
using ChineseClip.Coordinator.Scheduling;
using ChineseClip.Coordinator.Services;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChineseClip.Coordinator.Extensions;

public sealed class CoordinatorOptions
{
    /// <summary>Where stage runs write their logs and checkpoints: RunsDirectory/{schedule id}/{stage index}-{stage name}.</summary>
    public string RunsDirectory { get; set; } = "runs";
    /// <summary>When set, every call must carry it in the "cnclip-token" metadata header.</summary>
    public string Token { get; set; } = "";
    /// <summary>How long ranks wait for each other at a stage's rendezvous.</summary>
    public TimeSpan RendezvousTimeout { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>Attempts of one stage that fail without writing a checkpoint (the first and the recoveries after lost
    /// workers) before the schedule fails; an attempt that wrote one does not count.</summary>
    public int MaxAttempts { get; set; } = 5;
}

public static class Extensions
{
    public static IHostApplicationBuilder AddCoordinator(this IHostApplicationBuilder builder)
    {
        builder.AddRedisClient("redis");
        builder.Services.AddOptions<CoordinatorOptions>().BindConfiguration("Coordinator")
            .Validate(o => !string.IsNullOrWhiteSpace(o.RunsDirectory), "Coordinator:RunsDirectory must be set")
            .Validate(o => o.MaxAttempts >= 1, "Coordinator:MaxAttempts must be at least 1")
            .Validate(o => o.RendezvousTimeout > TimeSpan.Zero, "Coordinator:RendezvousTimeout must be positive").ValidateOnStart();
        builder.Services.AddSingleton<ScheduleStore>();
        builder.Services.AddSingleton<WorkerRegistry>();
        builder.Services.AddSingleton<RendezvousTable>();
        builder.Services.AddSingleton<StageRunner>();
        builder.Services.AddHostedService(s => s.GetRequiredService<StageRunner>());
        builder.Services.AddSingleton<TokenInterceptor>();
        builder.Services.AddGrpc(grpc => grpc.Interceptors.Add<TokenInterceptor>());
        // One set of checks for /health (HTTP, what the AppHost polls) and grpc.health.v1 (service ""): this one, the
        // Redis connection's (AddRedisClient) and the service defaults' "self".
        builder.Services.AddGrpcHealthChecks().AddCheck<ScheduleStoreHealthCheck>("schedules");
        return builder;
    }
}

/// <summary>Healthy once the schedules are loaded from Redis, that is once the coordinator can answer and schedule.</summary>
sealed class ScheduleStoreHealthCheck(ScheduleStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(store.Loaded ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("the schedules are not loaded from Redis yet"));
}
