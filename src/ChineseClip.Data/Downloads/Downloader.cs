// Downloads of the released checkpoints, the vocab and the evaluation datasets (the seed's download_models.sh and
// download_datasets.sh): HTTP Range resume from a `.part` file, SHA-256 where known, progress, atomic rename, and
// unpacking of dataset archives into place.
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace ChineseClip.Data.Downloads;

public sealed record DownloadItem(string Name, string Url, string FileName, string? Sha256 = null, bool Unzip = false);

public static class KnownDownloads
{
    const string Hub = "https://huggingface.co";

    static DownloadItem Model(string name, string repo, string file) => new(name, $"{Hub}/OFA-Sys/{repo}/resolve/main/{file}", file);

    /// <summary>The five released checkpoints (the official _MODELS table) and the vocab.</summary>
    public static readonly IReadOnlyList<DownloadItem> Models =
    [
        Model("ViT-B-16", "chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt"),
        Model("ViT-L-14", "chinese-clip-vit-large-patch14", "clip_cn_vit-l-14.pt"),
        Model("ViT-L-14-336", "chinese-clip-vit-large-patch14-336px", "clip_cn_vit-l-14-336.pt"),
        Model("ViT-H-14", "chinese-clip-vit-huge-patch14", "clip_cn_vit-h-14.pt"),
        Model("RN50", "chinese-clip-rn50", "clip_cn_rn50.pt"),
        Model("vocab", "chinese-clip-vit-base-patch16", "vocab.txt"),
    ];

    public static readonly IReadOnlyList<DownloadItem> Datasets =
    [
        .. new[] { "MUGE", "Flickr30k-CN", "COCO-CN" }.Select(n =>
            new DownloadItem(n, $"{Hub}/datasets/OFA-Sys/chinese-clip-eval/resolve/main/{n}.zip", $"{n}.zip", Unzip: true)),
    ];
}

public sealed class DownloadException(string message, Exception? inner = null) : Exception(message, inner);

/// <param name="bytes">told (bytes downloaded, total bytes when the server names it) after every chunk read</param>
public sealed class Downloader(HttpClient http, TextWriter progress, IProgress<(long Done, long? Total)>? bytes = null)
{
    /// <summary>Downloads to <c>DIR/FileName</c> (resuming a <c>.part</c> file), checks SHA-256 when known, and for
    /// archives unpacks into <c>DIR/Name</c>. Returns the final path. A download whose hash differs never becomes the
    /// final file: it is moved to <c>FileName.bad</c>, so that the next run starts afresh instead of resuming it.</summary>
    public async Task<string> GetAsync(DownloadItem item, string outputDir, string? urlOverride = null, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(outputDir);
        string target = Path.Combine(outputDir, item.FileName);
        if (File.Exists(target))
        {
            progress.WriteLine($"{target} exists; not downloading again");
            Verify(target, target, item.Sha256);
        }
        else
        {
            string part = target + ".part";
            await FetchAsync(urlOverride ?? item.Url, target, part, cancel);
            Verify(part, target, item.Sha256);
            File.Move(part, target, overwrite: true);
        }
        if (!item.Unzip) return target;
        string folder = Path.Combine(outputDir, item.Name);
        if (Directory.Exists(folder)) return folder;
        string temp = folder + ".unpacking-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            ZipFile.ExtractToDirectory(target, temp);
            // Archives usually hold one top folder named like the dataset; keep its contents, not a nested copy.
            var entries = Directory.GetFileSystemEntries(temp);
            string source = entries.Length == 1 && Directory.Exists(entries[0]) ? entries[0] : temp;
            Directory.Move(source, folder);
        }
        catch (InvalidDataException e)
        {
            throw new DownloadException($"{target}: not a valid zip archive: {e.Message}", e);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return folder;
    }

    void Verify(string file, string target, string? expected)
    {
        if (expected is null) return;
        string actual;
        using (var stream = File.OpenRead(file)) actual = Convert.ToHexStringLower(SHA256.HashData(stream));
        if (actual.Equals(expected, StringComparison.OrdinalIgnoreCase))
        {
            progress.WriteLine($"{Path.GetFileName(target)}: SHA-256 {actual} as expected");
            return;
        }
        string bad = target + ".bad";
        File.Move(file, bad, overwrite: true);
        throw new DownloadException($"{target}: SHA-256 mismatch: expected {expected.ToLowerInvariant()}, got {actual} " +
            $"(kept as {Path.GetFileName(bad)}; run again to download afresh)");
    }

    // Leaves the whole file in `part`; the caller checks it and moves it into place.
    async Task FetchAsync(string url, string target, string part, CancellationToken cancel)
    {
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        }
        catch (HttpRequestException e)
        {
            throw new DownloadException($"cannot reach {new Uri(url).Host}: {e.Message} (offline? pass --url to use a mirror or a local copy)", e);
        }
        using (response)
        {
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && have > 0)
                return; // the .part file was already complete
            if (!response.IsSuccessStatusCode)
                throw new DownloadException($"{url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
            if (!resumed) have = 0; // the server ignored the range: start over
            long? total = response.Content.Headers.ContentLength is long length ? length + have : null;
            await using (var output = new FileStream(part, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write))
            await using (var input = await response.Content.ReadAsStreamAsync(cancel))
            {
                var buffer = new byte[1 << 16];
                long done = have;
                int lastPercent = -1;
                if (resumed) progress.WriteLine($"resuming {Path.GetFileName(target)} at {have} bytes");
                for (int n; (n = await input.ReadAsync(buffer, cancel)) > 0;)
                {
                    await output.WriteAsync(buffer.AsMemory(0, n), cancel);
                    done += n;
                    bytes?.Report((done, total));
                    if (total is long t && t > 0 && (int)(100 * done / t) / 10 != lastPercent / 10)
                    {
                        lastPercent = (int)(100 * done / t);
                        progress.WriteLine($"{Path.GetFileName(target)} [{new string('#', lastPercent / 5),-20}] {lastPercent,3}% {done}/{t} bytes");
                    }
                }
                await output.FlushAsync(cancel);
                output.Flush(flushToDisk: true);
                if (total is long expected && done != expected)
                    throw new DownloadException($"{url}: connection closed at {done} of {expected} bytes; run again to resume");
            }
        }
    }
}
