// The search service's wiring: options (validated at start-up), the served collections, the coordinator client (for
// deploys), and the follower that deploys each finished schedule when Search:Follow is on.
using ChineseClip.Model.Imaging;
using ChineseClip.Search;
using ChineseClip.SearchService.Serving;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace ChineseClip.SearchService.Extensions;

public sealed class SearchOptions
{
    public const string Section = "Search";

    /// <summary>The folder whose sub-folders are the collections served (each named after its folder).</summary>
    public string Directory { get; set; } = "collections";
    /// <summary>When set (or the cluster's token), adding, deleting and deploying need it (header cnclip-token or
    /// Authorization: Bearer).</summary>
    public string Token { get; set; } = "";
    /// <summary>Largest request body, bytes.</summary>
    public long MaxRequestBytes { get; set; } = 20 * 1024 * 1024;
    /// <summary>Images larger than this many pixels are refused before they are decoded.</summary>
    public long MaxPixels { get; set; } = ImageTransform.DefaultMaxPixels;
    /// <summary>Concurrent requests are batched per tower: wait this long for more after the first, at most MaxBatch.</summary>
    public double BatchWindowMs { get; set; } = 2;
    public int MaxBatch { get; set; } = 32;
    /// <summary>Below this many items a search is exact unless the request asks for it anyway.</summary>
    public int ExactBelow { get; set; } = CollectionVersion.DefaultExactBelow;
    /// <summary>The encoder backend (ClipEncoders.Backends): onnx by default, since ONNX Runtime encoded 4.5x (images) and
    /// 3.5x (texts) faster than TorchSharp on our CPU (docs/onnx.md); a collection's checkpoint is exported once into
    /// <see cref="OnnxCache"/>. torch runs the checkpoint with TorchSharp.</summary>
    public string Backend { get; set; } = ClipEncoders.Onnx;
    /// <summary>Where the onnx backend keeps the exports it makes (default: .onnx-cache under <see cref="Directory"/>).</summary>
    public string? OnnxCache { get; set; }
    /// <summary>Threads of the model (libtorch intra-op) and of re-embedding.</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;
    /// <summary>Threads a deploy's re-embedding decodes and indexes with: by default half of <see cref="Threads"/> (at
    /// least one), so that searches keep cores while a deploy runs in the background.</summary>
    public int? DeployThreads { get; set; }
    /// <summary>How long a replaced collection version stays loaded for the searches that took it before the swap.</summary>
    public double SwapGraceSeconds { get; set; } = 30;
    /// <summary>Deploy every schedule the coordinator reports SUCCEEDED to <see cref="Collection"/>.</summary>
    public bool Follow { get; set; }
    /// <summary>The collection Search:Follow deploys to.</summary>
    public string Collection { get; set; } = "default";
    /// <summary>Where the images of <see cref="Collection"/> come from when a deploy has to create it: a folder or an
    /// official {split}_imgs.tsv (its {split}_texts.jsonl beside it gives the captions).</summary>
    public string? Images { get; set; }
    /// <summary>The coordinator's gRPC address; default: what Aspire injects, else http://127.0.0.1:5290.</summary>
    public string? Coordinator { get; set; }
    /// <summary>How often the follower asks the coordinator.</summary>
    public double FollowIntervalSeconds { get; set; } = 5;
}

public static class Extensions
{
    public static IHostApplicationBuilder AddSearchService(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SearchOptions>().Bind(builder.Configuration.GetSection(SearchOptions.Section))
            .Validate(o => o.MaxRequestBytes >= 1024, "Search:MaxRequestBytes must be at least 1024")
            .Validate(o => o.MaxBatch >= 1, "Search:MaxBatch must be at least 1")
            .Validate(o => o.BatchWindowMs >= 0, "Search:BatchWindowMs must not be negative")
            .Validate(o => o.Threads >= 1, "Search:Threads must be at least 1")
            .Validate(o => o.DeployThreads is null or >= 1, "Search:DeployThreads must be at least 1")
            .Validate(o => o.SwapGraceSeconds is >= 0 and <= 86400, "Search:SwapGraceSeconds must be between 0 and 86400")
            .Validate(o => ClipEncoders.Backends.Contains(o.Backend), $"Search:Backend must be one of {string.Join(", ", ClipEncoders.Backends)}")
            .Validate(o => !string.IsNullOrWhiteSpace(o.Directory), "Search:Directory must be set")
            .ValidateOnStart();
        builder.Services.Configure<KestrelServerOptions>(k =>
            k.Limits.MaxRequestBodySize = builder.Configuration.GetValue<long?>("Search:MaxRequestBytes") ?? new SearchOptions().MaxRequestBytes);
        builder.Services.AddSingleton<ModelHosts>();
        builder.Services.AddSingleton<ServedCollections>();
        builder.Services.AddSingleton<CoordinatorChannel>();
        builder.Services.AddSingleton<Deployer>();
        builder.Services.AddHostedService<Follower>();
        builder.Services.AddHealthChecks().AddCheck<ServedCollections>("collections");
        return builder;
    }

    public static SearchOptions Options(this IServiceProvider services) => services.GetRequiredService<IOptions<SearchOptions>>().Value;
}
