// The AppHost's settings, bound once from the "Cluster" section (arguments such as Cluster:Workers=4, or environment
// variables such as Cluster__Workers=4) and checked before anything is declared.
using Microsoft.Extensions.Configuration;

namespace ChineseClip.AppHost;

public enum RedisMode { Auto, Container, Executable, Garnet }

public sealed record ClusterSettings
{
    public const string Section = "Cluster";

    /// <summary>Training workers, worker-0 .. worker-{N-1}.</summary>
    public int Workers { get; init; } = 2;
    /// <summary>Set: workers below it train on cuda:i, the rest on the CPU. Unset: each worker takes GPU i when its
    /// libtorch sees one ("auto"), else the CPU.</summary>
    public int? Gpus { get; init; }
    /// <summary>Preprocessors consuming the shard queue; 0: workers decode their training data themselves.</summary>
    public int Preprocessors { get; init; } = 1;
    /// <summary>The embedded demo: demo data, then its three-stage schedule submitted by `cnclip submit`.</summary>
    public bool Demo { get; init; } = true;
    /// <summary>Stage runs, demo data and the Redis data files; default: runs/ beside the AppHost project.</summary>
    public string? RunsDirectory { get; init; }
    /// <summary>Auto: a container when a container engine answers, else redis-server, else the embedded Garnet.</summary>
    public RedisMode Redis { get; init; } = RedisMode.Auto;
    /// <summary>Intra-op threads per worker; default: the machine's cores shared among the workers.</summary>
    public int? ThreadsPerWorker { get; init; }
    /// <summary>The cluster token every call to the coordinator must carry (empty: none).</summary>
    public string Token { get; init; } = "";

    /// <summary>The bound settings, defaults filled in.</summary>
    /// <exception cref="InvalidOperationException">A setting that is unknown or cannot be used, in one line naming it.</exception>
    public static ClusterSettings From(IConfiguration configuration, string appHostDirectory)
    {
        var section = configuration.GetSection(Section);
        var names = typeof(ClusterSettings).GetProperties().Select(p => p.Name).ToList();
        foreach (var child in section.GetChildren())
            if (!names.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                throw new InvalidOperationException($"{Section}:{child.Key}: not a setting (the settings: {string.Join(", ", names)})");
        ClusterSettings settings;
        try
        {
            settings = section.Get<ClusterSettings>() ?? new ClusterSettings();
        }
        catch (InvalidOperationException e)
        {
            // "Failed to convert configuration value 'x' at 'Cluster:Key' to type '...'": the first line says it all.
            string also = section[nameof(Redis)] is { } mode && !Enum.TryParse<RedisMode>(mode, ignoreCase: true, out _)
                ? $" ({Section}:{nameof(Redis)} is one of {string.Join(", ", Enum.GetNames<RedisMode>()).ToLowerInvariant()})" : "";
            throw new InvalidOperationException(e.Message + also, e);
        }
        foreach (var (key, value) in new (string, int?)[]
            { ("Workers", settings.Workers), ("Gpus", settings.Gpus), ("Preprocessors", settings.Preprocessors), ("ThreadsPerWorker", settings.ThreadsPerWorker) })
            if (value < 0) throw new InvalidOperationException($"{Section}:{key}: {value} is negative");
        if (settings.ThreadsPerWorker == 0) throw new InvalidOperationException($"{Section}:ThreadsPerWorker: must be at least 1");
        return settings with
        {
            RunsDirectory = Path.GetFullPath(settings.RunsDirectory ?? Path.Combine(appHostDirectory, "..", "runs")),
            ThreadsPerWorker = settings.ThreadsPerWorker ?? Math.Max(1, Environment.ProcessorCount / Math.Max(1, settings.Workers)),
        };
    }

    /// <summary>The device worker <paramref name="index"/> trains on (the Worker:Device option).</summary>
    public string DeviceOf(int index) => Gpus is null ? "auto" : index < Gpus ? $"cuda:{index}" : "cpu";
}
