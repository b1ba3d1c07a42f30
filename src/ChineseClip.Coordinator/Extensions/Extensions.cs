// The coordinator's wiring: options, the schedule store (Redis), worker registry, rendezvous, the stage runner, the
// cluster-token check, and gRPC with health.
using ChineseClip.Coordinator.Scheduling;
using ChineseClip.Coordinator.Services;

namespace ChineseClip.Coordinator.Extensions;

public sealed class CoordinatorOptions
{
    /// <summary>Where stage runs write their logs and checkpoints: RunsDirectory/{schedule id}/{stage index}-{stage name}.</summary>
    public string RunsDirectory { get; set; } = "runs";
    /// <summary>When set, every call must carry it in the "cnclip-token" metadata header.</summary>
    public string Token { get; set; } = "";
    /// <summary>How long ranks wait for each other at a stage's rendezvous.</summary>
    public TimeSpan RendezvousTimeout { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>Attempts of one stage (the first and the recoveries after lost workers) before the schedule fails.</summary>
    public int MaxAttempts { get; set; } = 5;
}

public static class Extensions
{
    public static IHostApplicationBuilder AddCoordinator(this IHostApplicationBuilder builder)
    {
        builder.AddRedisClient("redis");
        builder.Services.AddOptions<CoordinatorOptions>().Bind(builder.Configuration.GetSection("Coordinator"))
            .Validate(o => !string.IsNullOrWhiteSpace(o.RunsDirectory), "Coordinator:RunsDirectory must be set").ValidateOnStart();
        builder.Services.AddSingleton<ScheduleStore>();
        builder.Services.AddSingleton<WorkerRegistry>();
        builder.Services.AddSingleton<RendezvousTable>();
        builder.Services.AddSingleton<StageRunner>();
        builder.Services.AddHostedService(s => s.GetRequiredService<StageRunner>());
        builder.Services.AddSingleton<TokenInterceptor>();
        builder.Services.AddGrpc(grpc => grpc.Interceptors.Add<TokenInterceptor>());
        builder.Services.AddGrpcHealthChecks().AddCheck("coordinator", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());
        return builder;
    }
}
