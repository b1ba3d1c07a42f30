// The worker's wiring: options, the coordinator channel (h2c, no HTTP resilience handler: Join is a stream that lives
// as long as the worker), and the hosted service that joins and trains.
using ChineseClip.Contracts.Coordinator;
using ChineseClip.Preprocessing;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace ChineseClip.Worker.Extensions;

public sealed class WorkerOptions
{
    /// <summary>Unique in the cluster; default: WORKER_NAME, else host-pid.</summary>
    public string Name { get; set; } = Environment.GetEnvironmentVariable("WORKER_NAME") ?? $"{Environment.MachineName}-{Environment.ProcessId}";
    /// <summary>"cpu", "cuda", "cuda:i", or "auto" (cuda:GpuIndex when libtorch sees that GPU, else cpu; resolved at
    /// start): the training option device of this worker's ranks, unless a stage sets it.</summary>
    public string Device { get; set; } = "cpu";
    /// <summary>The GPU an "auto" worker takes when there is one.</summary>
    public int GpuIndex { get; set; }
    /// <summary>The address this worker's ring listens on and others dial.</summary>
    public string RingHost { get; set; } = "127.0.0.1";
    /// <summary>Intra-op CPU threads for training, unless a stage sets threads itself.</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;
    /// <summary>The coordinator's gRPC address; default: what Aspire injects, else http://127.0.0.1:5290.</summary>
    public string? Coordinator { get; set; }
    /// <summary>The cluster token, sent as "cnclip-token" when set.</summary>
    public string Token { get; set; } = "";
    /// <summary>Pairs per shard when a stage's data goes through the preprocessing queue (when Redis is configured).</summary>
    public int PairsPerShard { get; set; } = 1024;
    /// <summary>How long a rank waits for its ring predecessor (data, or the rendezvous) before its run fails and the
    /// stage is re-formed: a peer that stalls (a stopped process, a hung machine) costs this long.</summary>
    public double RingTimeoutSeconds { get; set; } = 600;
}

public static class Extensions
{
    public static IHostApplicationBuilder AddWorker(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration("Worker")
            .PostConfigure(o => { if (o.Device == "auto") o.Device = ChineseClip.Training.DeviceSettings.Auto(o.GpuIndex); })
            .Validate(o => o.Threads >= 1, "Worker:Threads must be at least 1")
            .Validate(o => o.RingTimeoutSeconds >= 1, "Worker:RingTimeoutSeconds must be at least 1")
            .Validate(o => o.GpuIndex >= 0, "Worker:GpuIndex must not be negative")
            .Validate(o => ChineseClip.Training.TrainOptions.TryParseDevice(o.Device, out _), "Worker:Device must be cpu, cuda, cuda:N or auto")
            .Validate(o => !string.IsNullOrWhiteSpace(o.Name), "Worker:Name must be set").ValidateOnStart();
        builder.Services.AddSingleton(services =>
        {
            var options = services.GetRequiredService<IOptions<WorkerOptions>>().Value;
            var config = services.GetRequiredService<IConfiguration>();
            string address = options.Coordinator ?? config["services:coordinator:grpc:0"] ?? "http://127.0.0.1:5290";
            var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler
                {
                    ConnectTimeout = TimeSpan.FromSeconds(10),
                    KeepAlivePingDelay = TimeSpan.FromSeconds(20),
                    KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
                    KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                },
            });
            var invoker = options.Token.Length == 0 ? channel.CreateCallInvoker()
                : channel.CreateCallInvoker().Intercept(metadata =>
                {
                    metadata.Add("cnclip-token", options.Token);
                    return metadata;
                });
            return new Coordinator.CoordinatorClient(invoker);
        });
        // With Redis, stages take their training data through the preprocessing queue; without, they decode it themselves.
        if (builder.Configuration.GetConnectionString("redis") is { Length: > 0 })
        {
            builder.AddRedisClient("redis");
            builder.Services.AddPreprocessingOptions();
            builder.Services.AddSingleton<ITaskQueue>(services =>
            {
                var redis = services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>();
                // This side only enqueues: no blocking reads, no second connection.
                return new RedisTaskQueue(redis, redis, services.GetRequiredService<IOptions<PreprocessingOptions>>().Value);
            });
        }
        builder.Services.AddHostedService<WorkerService>();
        return builder;
    }
}
