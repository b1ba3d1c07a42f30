using ChineseClip.Preprocessing;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChineseClip.Preprocessor.Extensions;

public static class Extensions
{
    /// <summary>The queue (shared connection from AddRedisClient, plus a dedicated one for blocking takes), its
    /// options from the "Preprocessing" section, and the consumer loop as a hosted service.</summary>
    public static IHostApplicationBuilder AddPreprocessing(this IHostApplicationBuilder builder)
    {
        string connectionString = builder.Configuration.GetConnectionString("redis") is { Length: > 0 } cs ? cs
            : throw new InvalidOperationException("ConnectionStrings:redis is not set (standalone: ConnectionStrings__redis=127.0.0.1:6379)");
        builder.Services.AddPreprocessingOptions();
        builder.Services.AddSingleton<ITaskQueue>(services =>
        {
            var blocking = ConfigurationOptions.Parse(connectionString);
            blocking.AbortOnConnectFail = false;
            blocking.ClientName = "preprocessor-blocking";
            return new RedisTaskQueue(services.GetRequiredService<IConnectionMultiplexer>(), ConnectionMultiplexer.Connect(blocking),
                services.GetRequiredService<IOptions<PreprocessingOptions>>().Value);
        });
        builder.Services.AddHostedService<PreprocessorService>();
        return builder;
    }
}

/// <summary>Runs one <see cref="QueueConsumer"/> for the life of the host.</summary>
sealed class PreprocessorService(ITaskQueue queue, IOptions<PreprocessingOptions> settings, ILogger<PreprocessorService> logger) : BackgroundService
{
    readonly PreprocessingOptions _options = settings.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.LogInformation("consuming queue {Queue} (lease {Lease} s, {Attempts} attempts)", _options.Queue, _options.LeaseSeconds, _options.MaxAttempts);
        await Task.Yield(); // let the host finish starting
        await new QueueConsumer(queue, _options, logger).RunAsync(stoppingToken);
    }
}
