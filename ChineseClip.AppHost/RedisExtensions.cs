// The cluster's Redis, declared in one of three ways, each keeping its data across restarts of the AppHost (schedules,
// their lineage and best checkpoints live there): a Redis container with a data volume (snapshots and the
// append-only file), Debian's redis-server (append-only file in RUNS/.redis), or the embedded Garnet server (its
// append-only log and checkpoints in RUNS/.garnet, recovered on start).
using System.Diagnostics;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;

namespace ChineseClip.AppHost;

public static class RedisExtensions
{
    /// <summary>Redis as <paramref name="mode"/> says; Auto takes a container when a container engine answers, else
    /// redis-server when it is on the PATH, else the embedded Garnet server.</summary>
    public static IResourceBuilder<IResourceWithConnectionString> AddClusterRedis(this IDistributedApplicationBuilder builder, string name,
        RedisMode mode, string runsDirectory)
    {
        if (mode == RedisMode.Auto)
            mode = ContainerEngineAnswers() ? RedisMode.Container : OnPath("redis-server") ? RedisMode.Executable : RedisMode.Garnet;
        return mode switch
        {
            // Snapshots every 10 s when anything changed, and every write in the append-only file (fsync each second).
            RedisMode.Container => builder.AddRedis(name).WithDataVolume().WithPersistence(TimeSpan.FromSeconds(10), 1).WithAppendOnlyFile(),
            RedisMode.Executable => builder.AddRedisServer(name, Path.Combine(runsDirectory, ".redis")),
            _ => builder.AddGarnetServer(name, new Projects.ChineseClip_Garnet().ProjectPath, Path.Combine(runsDirectory, ".garnet")),
        };
    }

    /// <summary>Turns on the append-only file of a Redis container. AddRedis runs redis-server through `/bin/sh -c` with
    /// its arguments in one string when publishing (one argument each when running): the option must go into that
    /// string, where a plain WithArgs would put it after it (as arguments of the shell, ignored).</summary>
    public static IResourceBuilder<RedisResource> WithAppendOnlyFile(this IResourceBuilder<RedisResource> redis) =>
        redis.WithArgs(context =>
        {
            int shell = context.Args.IndexOf("-c");
            if (shell >= 0 && shell + 1 < context.Args.Count && context.Args[shell + 1] is string command)
                context.Args[shell + 1] = $"{command} --appendonly yes";
            else
            {
                context.Args.Add("--appendonly");
                context.Args.Add("yes");
            }
        });

    /// <summary>redis-server with append-only persistence in <paramref name="dataDirectory"/>.</summary>
    public static IResourceBuilder<RedisServerResource> AddRedisServer(this IDistributedApplicationBuilder builder, string name, string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        return builder.AddRedisCompatible(new RedisServerResource(name, "redis-server", dataDirectory), port =>
            ["--port", port, "--bind", "127.0.0.1", "--appendonly", "yes", "--save", "", "--dir", dataDirectory]);
    }

    /// <summary>The ChineseClip.Garnet project (Microsoft Garnet in-process) with its append-only log and checkpoints in
    /// <paramref name="dataDirectory"/>, recovered on start. Every write is committed to the log as it happens; a
    /// checkpoint is taken (and the log truncated) once the log passes 64 MB.</summary>
    public static IResourceBuilder<RedisServerResource> AddGarnetServer(this IDistributedApplicationBuilder builder, string name, string projectPath,
        string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        string project = Path.GetDirectoryName(projectPath)!;
        // --device-type RandomAccess: Garnet's default (native) storage device needs glibc 2.38, libaio and liburing,
        // which Debian 12 lacks (its writes then fail and the server stops); the managed device works everywhere.
        return builder.AddRedisCompatible(new RedisServerResource(name, "dotnet", project), port =>
            ["run", "--no-build", "--project", projectPath, "--", "--port", port, "--bind", "127.0.0.1", "--memory", "256m", "--index", "16m",
             "--aof", "--aof-size-limit", "64m", "--checkpointdir", dataDirectory, "--recover", "--device-type", "RandomAccess"]);
    }

    static IResourceBuilder<RedisServerResource> AddRedisCompatible(this IDistributedApplicationBuilder builder, RedisServerResource resource,
        Func<object, object[]> arguments)
    {
        string healthKey = $"{resource.Name}_check";
        string? connectionString = null;
        builder.Eventing.Subscribe<ConnectionStringAvailableEvent>(resource, async (_, cancel) =>
            connectionString = await resource.ConnectionStringExpression.GetValueAsync(cancel));
        builder.Services.AddHealthChecks().AddRedis(_ => connectionString ?? throw new InvalidOperationException($"{resource.Name} has no address yet"), name: healthKey);
        return builder.AddResource(resource)
            .WithEndpoint(name: "tcp", scheme: "tcp", targetPort: null)
            .WithArgs(context =>
            {
                foreach (object a in arguments(resource.Endpoint.Property(EndpointProperty.TargetPort))) context.Args.Add(a);
            })
            .WithHealthCheck(healthKey);
    }

    static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, program)));

    // `docker info` answers only when an engine runs; a CLI without a daemon fails fast.
    static bool ContainerEngineAnswers()
    {
        try
        {
            using var docker = Process.Start(new ProcessStartInfo("docker", "info") { RedirectStandardOutput = true, RedirectStandardError = true });
            if (docker is null) return false;
            if (!docker.WaitForExit(TimeSpan.FromSeconds(10))) { docker.Kill(); return false; }
            return docker.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no docker CLI at all
        }
    }
}
