// The JSON API: collections, search (JSON or a multipart upload), embeddings, zero-shot classification, item writes,
// deploys, thumbnails. Writes need the token when one is set.
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using ChineseClip.Search;
using ChineseClip.SearchService.Extensions;
using ChineseClip.SearchService.Serving;
using ChineseClip.Training.Reporting;

namespace ChineseClip.SearchService.Api;

public static class SearchApi
{
    public const int MaxK = 1000;
    /// <summary>Inputs one /v1/embed or /v1/classify request may carry.</summary>
    public const int MaxInputs = 256;
    /// <summary>labels x templates of one /v1/classify (the official template set allows 50 labels).</summary>
    public const int MaxPrompts = 183 * 50;

    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static WebApplication MapSearchApi(this WebApplication app)
    {
        app.MapGet("/v1/collections", (ServedCollections collections) => Results.Json(new
        {
            collections = collections.All.Where(c => c.Current is not null || c.Deploy is not null).Select(Describe),
        }, Json));
        app.MapPost("/v1/search", async (HttpContext http, ServedCollections collections, ModelHosts hosts) =>
        {
            var request = await Read<SearchRequest>(http);
            byte[]? image = request.Image is null ? null : DecodeBase64(request.Image, "image");
            return Results.Json(await SearchAsync(http, collections, hosts, request.Collection, request.Text, image, request.Vector,
                request.Target, request.K, request.Exact ?? false), Json);
        });
        app.MapPost("/v1/search/upload", async (HttpContext http, ServedCollections collections, ModelHosts hosts) =>
        {
            if (!http.Request.HasFormContentType) throw new ApiException(400, "expected multipart/form-data with file, collection, k, target");
            var form = await http.Request.ReadFormAsync();
            var file = form.Files.GetFile("file") ?? throw new ApiException(400, "file: missing");
            using var buffer = new MemoryStream();
            await file.CopyToAsync(buffer);
            int? k = form["k"].FirstOrDefault() is { Length: > 0 } kText
                ? int.TryParse(kText, out int parsed) ? parsed : throw new ApiException(400, $"k: '{kText}' is not a whole number")
                : null;
            bool exact = form["exact"].FirstOrDefault() is "true" or "1";
            return Results.Json(await SearchAsync(http, collections, hosts, form["collection"].FirstOrDefault(), null, buffer.ToArray(), null,
                form["target"].FirstOrDefault(), k, exact), Json);
        });
        app.MapPost("/v1/embed", async (HttpContext http, ServedCollections collections, ModelHosts hosts) =>
        {
            var request = await Read<EmbedRequest>(http);
            int texts = request.Texts?.Length ?? 0, images = request.Images?.Length ?? 0;
            if (texts + images == 0) throw new ApiException(400, "give texts and/or images");
            if (texts > MaxInputs || images > MaxInputs) throw new ApiException(400, $"at most {MaxInputs} texts and {MaxInputs} images per request");
            var version = ModelCollection(collections, request.Collection);
            var host = hosts.Get(version.Manifest.Model);
            var textVectors = await Task.WhenAll((request.Texts ?? []).Select((t, i) => host.Texts.EmbedAsync(NonEmpty(t, $"texts[{i}]"))));
            var pixels = (request.Images ?? []).Select((b, i) => Pixels(host, DecodeBase64(b, $"images[{i}]"), $"images[{i}]")).ToList();
            var imageVectors = await Task.WhenAll(pixels.Select(host.Images.EmbedAsync));
            return Results.Json(new { dimension = host.Embedder.Dimension, texts = textVectors, images = imageVectors, model = ModelOf(version) }, Json);
        });
        app.MapPost("/v1/classify", async (HttpContext http, ServedCollections collections, ModelHosts hosts) =>
        {
            var request = await Read<ClassifyRequest>(http);
            if (request.Image is null) throw new ApiException(400, "image: missing");
            if (request.Labels is not { Length: > 0 } labels) throw new ApiException(400, "labels: give at least one label");
            IReadOnlyList<string> templates = request.Templates is { Length: > 0 } t ? t : PromptTemplates.Official;
            for (int i = 0; i < templates.Count; i++)
                if (templates[i] is null || !templates[i].Contains("{}")) throw new ApiException(400, $"templates[{i}]: needs {{}} where the label goes");
            if (labels.Length * templates.Count > MaxPrompts) throw new ApiException(400, $"labels x templates: at most {MaxPrompts} prompts");
            for (int l = 0; l < labels.Length; l++) NonEmpty(labels[l], $"labels[{l}]");
            var version = ModelCollection(collections, request.Collection);
            var host = hosts.Get(version.Manifest.Model);
            float[] image = await host.Images.EmbedAsync(Pixels(host, DecodeBase64(request.Image, "image"), "image"));
            var classes = await Task.WhenAll(labels.Select(label => host.ClassVectorAsync(label, templates)));
            // Zero-shot logits: 100 x the cosine of the image and each class vector, as the official evaluation scales them.
            double[] logits = classes.Select(c => 100.0 * c.Select((x, i) => (double)x * image[i]).Sum()).ToArray();
            double max = logits.Max();
            double[] exp = logits.Select(x => Math.Exp(x - max)).ToArray();
            double sum = exp.Sum();
            return Results.Json(new
            {
                labels = labels.Select((label, i) => new { label, probability = exp[i] / sum }).OrderByDescending(x => x.probability),
                templates = templates.Count, model = ModelOf(version),
            }, Json);
        });
        app.MapPost("/v1/collections/{name}/items", async (string name, HttpContext http, ServedCollections collections, ModelHosts hosts) =>
        {
            RequireToken(http);
            var request = await Read<AddItemsRequest>(http);
            var collection = Served(collections, name);
            if (request.Items is not { Length: > 0 } items) throw new ApiException(400, "items: give at least one item");
            return await WriteAsync(collection, () => AddItems(http, collections, hosts, collection, items));
        });
        app.MapDelete("/v1/collections/{name}/items/{id}", async (string name, string id, HttpContext http, ServedCollections collections) =>
        {
            RequireToken(http);
            var collection = Served(collections, name);
            if (!long.TryParse(id, out long itemId)) throw new ApiException(400, $"item id '{id}' is not a whole number");
            return await WriteAsync(collection, () =>
            {
                var current = collection.Current!;
                if (!current.ImagesById.ContainsKey(itemId)) throw new ApiException(404, $"collection '{name}' has no item {itemId}");
                var manifest = CollectionBuilder.Remove(current, new HashSet<long> { itemId }, new BuildOptions { Threads = http.RequestServices.Options().Threads });
                collections.Publish(collection);
                return Results.Json(new { deleted = itemId, count = manifest.Count, version = manifest.Version }, Json);
            });
        });
        app.MapPost("/v1/collections/{name}/deploy", async (string name, HttpContext http, Deployer deployer) =>
        {
            RequireToken(http);
            var request = await Read<DeployRequest>(http);
            var plan = await deployer.PlanAsync(name, request.ScheduleId ?? "", request.Stage, http.RequestAborted);
            return Results.Json(deployer.Start(plan), Json, statusCode: 202);
        });
        app.MapGet("/v1/collections/{name}/report", (string name, ServedCollections collections) =>
        {
            var collection = Served(collections, name);
            string metrics = ReportMetrics(collection.Current!) ?? throw new ApiException(404,
                $"collection '{name}': no training metrics beside its checkpoint {collection.Current!.Manifest.Model.Checkpoint}");
            var model = collection.Current!.Manifest.Model;
            string run = model.Schedule is null ? Path.GetFileName(Path.GetDirectoryName(metrics)!) : $"schedule {model.Schedule}, stage {model.Stage}";
            return Results.Content(ReportPage.Html($"Training report: the model serving '{name}'",
                [new ReportSection($"Run {run}", RunMetrics.Read(metrics))]), "text/html; charset=utf-8");
        });
        app.MapGet("/v1/collections/{name}/items/{id}/image", (string name, string id, ServedCollections collections) =>
        {
            var collection = Served(collections, name);
            if (!long.TryParse(id, out long itemId) || !collection.Current!.ImagesById.ContainsKey(itemId))
                throw new ApiException(404, $"collection '{name}' has no item {id}");
            string path = CollectionFiles.Thumbnail(collection.Folder, itemId);
            if (!File.Exists(path)) throw new ApiException(404, $"item {itemId} has no thumbnail");
            return Results.File(path, "image/jpeg");
        });
        return app;
    }

    static object Describe(ServedCollection c)
    {
        var m = c.Current?.Manifest;
        return new
        {
            name = c.Name, count = m?.Count ?? 0, texts = m?.Texts ?? 0, dimension = m?.Dimension ?? 0, version = m?.Version ?? 0,
            model = c.Current is { } v ? ModelOf(v) : null, built_at = m?.BuiltAt, deploy = c.Deploy,
            report = c.Current is { } cv && ReportMetrics(cv) is not null ? $"/v1/collections/{Uri.EscapeDataString(c.Name)}/report" : null,
        };
    }

    /// <summary>The metrics.jsonl of the run that wrote the serving checkpoint (its run folder holds the checkpoints
    /// folder), or null when it is not on this machine.</summary>
    static string? ReportMetrics(CollectionVersion v)
    {
        string metrics = Contracts.CheckpointLayout.OfCheckpoint(v.Manifest.Model.Checkpoint).Metrics;
        return File.Exists(metrics) ? metrics : null;
    }

    static object ModelOf(CollectionVersion v)
    {
        var m = v.Manifest.Model;
        return new { checkpoint = m.Checkpoint, sha256 = m.Sha256, arch = m.Arch, schedule = m.Schedule, stage = m.Stage, recall = m.Recall };
    }

    static async Task<object> SearchAsync(HttpContext http, ServedCollections collections, ModelHosts hosts, string? name, string? text,
        byte[]? image, float[]? vector, string? target, int? k, bool exact)
    {
        var watch = Stopwatch.StartNew();
        if (string.IsNullOrEmpty(name)) throw new ApiException(400, "collection: missing");
        int given = (text is null ? 0 : 1) + (image is null ? 0 : 1) + (vector is null ? 0 : 1);
        if (given != 1) throw new ApiException(400, "give exactly one of text, image or vector");
        int count = k ?? 10;
        if (count < 1 || count > MaxK) throw new ApiException(400, $"k: {count} is out of range 1..{MaxK}");
        SearchTarget searchTarget;
        try { searchTarget = SearchResults.ParseTarget(target); }
        catch (ArgumentException e) { throw new ApiException(400, e.Message); }
        var collection = Served(collections, name);
        CollectionVersion version = collection.Current!; // taken once: this search sees one version throughout
        var host = hosts.Get(version.Manifest.Model);
        float[] query;
        if (text is not null) query = await host.Texts.EmbedAsync(NonEmpty(text, "text"));
        else if (image is not null) query = await host.Images.EmbedAsync(Pixels(host, image, "image"));
        else query = Normalised(vector!, version.Manifest.Dimension);
        var hits = version.Search(searchTarget, query, count, exact, http.RequestServices.Options().ExactBelow);
        var results = SearchResults.Describe(version, searchTarget, hits).Select(r => new
        {
            id = r.Id, score = r.Score, captions = r.Captions, image = $"/v1/collections/{Uri.EscapeDataString(version.Name)}/items/{r.ImageId}/image",
            image_id = r.ImageId,
        });
        return new { results, took_ms = Math.Round(watch.Elapsed.TotalMilliseconds, 2), model = ModelOf(version), version = version.Manifest.Version };
    }

    static float[] Normalised(float[] vector, int dimension)
    {
        if (vector.Length != dimension) throw new ApiException(400, $"vector: {vector.Length} values, the collection's vectors have {dimension}");
        double norm = Math.Sqrt(vector.Sum(x => (double)x * x));
        if (!(norm > 0) || double.IsInfinity(norm)) throw new ApiException(400, "vector: its norm is zero or not finite");
        return vector.Select(x => (float)(x / norm)).ToArray();
    }

    static string NonEmpty(string? text, string field) =>
        string.IsNullOrWhiteSpace(text) ? throw new ApiException(400, $"{field}: empty query") : text;

    static float[] Pixels(ModelHost host, byte[] bytes, string field)
    {
        try { return host.Embedder.Pixels(bytes); }
        catch (InvalidImageException e) { throw new ApiException(400, $"{field}: {e.Message}"); }
    }

    static byte[] DecodeBase64(string text, string field)
    {
        ReadOnlySpan<char> span = text.AsSpan().Trim();
        int comma = span.IndexOf(',');
        if (span.StartsWith("data:") && comma > 0) span = span[(comma + 1)..]; // a data: URL, as browsers make them
        return Base64.Decode(span) ?? throw new ApiException(400, $"{field}: not valid base64");
    }

    static ServedCollection Served(ServedCollections collections, string name) =>
        collections.Find(name) is { Current: not null } c ? c : throw new ApiException(404, $"collection '{name}': unknown");

    /// <summary>The collection whose model /v1/embed and /v1/classify use: the one named, else the only one served.</summary>
    static CollectionVersion ModelCollection(ServedCollections collections, string? name)
    {
        if (name is not null) return Served(collections, name).Current!;
        var served = collections.All.Where(c => c.Current is not null).ToList();
        return served.Count == 1 ? served[0].Current! : throw new ApiException(400, $"collection: name one of {string.Join(", ", served.Select(c => c.Name))}");
    }

    static async Task<T> Read<T>(HttpContext http)
    {
        T? value;
        try { value = await JsonSerializer.DeserializeAsync<T>(http.Request.Body, Json, http.RequestAborted); }
        catch (JsonException e) { throw new ApiException(400, $"body: {e.Message}"); }
        return value ?? throw new ApiException(400, "body: expected a JSON object");
    }

    internal static void RequireToken(HttpContext http)
    {
        string token = http.RequestServices.Options().Token;
        if (token.Length == 0) return;
        string given = http.Request.Headers["cnclip-token"].FirstOrDefault()
            ?? (http.Request.Headers.Authorization.FirstOrDefault() is { } auth && auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth[7..] : "");
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(token)))
            throw new ApiException(401, "this write needs the service's token (header cnclip-token or Authorization: Bearer)");
    }

    static async Task<IResult> WriteAsync(ServedCollection collection, Func<IResult> write)
    {
        if (collection.Deploy is { State: "running" }) throw new ApiException(409, $"collection '{collection.Name}': a deploy is running; try again when it ends");
        await collection.WriteLock.WaitAsync();
        try { return await Task.Run(write); }
        finally { collection.WriteLock.Release(); }
    }

    sealed record RejectedItem(int Index, string Error);

    static IResult AddItems(HttpContext http, ServedCollections collections, ModelHosts hosts, ServedCollection collection, NewItem[] items)
    {
        var current = collection.Current!;
        var host = hosts.Get(current.Manifest.Model);
        var rejected = new List<RejectedItem>();
        var sources = new List<SourceImage>();
        string uploads = Path.Combine(collection.Folder, CollectionFiles.Uploads);
        Directory.CreateDirectory(uploads);
        for (int i = 0; i < items.Length; i++)
        {
            string field = $"items[{i}]";
            try
            {
                var item = items[i] ?? throw new ApiException(400, $"{field}: null");
                byte[] bytes = DecodeBase64(item.Image ?? throw new ApiException(400, $"{field}.image: missing"), $"{field}.image");
                Pixels(host, bytes, $"{field}.image");
                if (item.Id is long id && current.ImagesById.ContainsKey(id)) throw new ApiException(409, $"{field}.id: {id} is already in the collection");
                string path = Path.Combine(uploads, Convert.ToHexStringLower(SHA256.HashData(bytes))[..32] + ".img");
                if (!File.Exists(path)) Model.Checkpoints.AtomicFile.Write(path, s => s.Write(bytes));
                var captions = (item.Captions ?? []).Select(c => c?.Trim() ?? "").Where(c => c.Length > 0).Distinct().Select(c => new SourceCaption(null, c)).ToList();
                sources.Add(new SourceImage(path, null, field, () => File.ReadAllBytes(path), captions, item.Id));
            }
            catch (ApiException e)
            {
                rejected.Add(new RejectedItem(i, e.Message));
            }
        }
        var problems = new List<string>();
        var result = CollectionBuilder.Add(collection.Folder, collection.Name, host.Embedder, new SourceSet(sources.Count, sources),
            new BuildOptions { Threads = http.RequestServices.Options().Threads }, problems.Add, current: current);
        rejected.AddRange(problems.Select(p => new RejectedItem(int.Parse(p[(p.IndexOf('[') + 1)..p.IndexOf(']')]), p)));
        if (result.Manifest is not null) collections.Publish(collection);
        var manifest = result.Manifest ?? current.Manifest;
        var body = new { added = result.Added, already_there = result.AlreadyThere, rejected, count = manifest.Count, version = manifest.Version };
        return result.Added == 0 && rejected.Count > 0
            ? Results.Json(new { error = $"no item added: {rejected[0].Error}", body.rejected }, Json, statusCode: 400)
            : Results.Json(body, Json);
    }
}
