// cnclip download-model / download-dataset: the released checkpoints, the vocab and the evaluation datasets, with
// resume, progress and unpacking; --url overrides the public default (a mirror, or a local server); --sha256 checks
// the file. Each run fetches the one file NAME stands for, so one hash always names exactly one file.
using System.CommandLine;
using System.Text.RegularExpressions;
using ChineseClip.Data.Downloads;

namespace ChineseClip.Cli.Commands;

public static class DownloadCommands
{
    public static Command Model(CliIO io) =>
        Create(io, "download-model", "Download a released checkpoint (ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14, RN50) or the vocab.", KnownDownloads.Models);

    public static Command Dataset(CliIO io) =>
        Create(io, "download-dataset", "Download and unpack an evaluation dataset (MUGE, Flickr30k-CN, COCO-CN) in the official layout.", KnownDownloads.Datasets);

    static Command Create(CliIO io, string verb, string description, IReadOnlyList<DownloadItem> known)
    {
        var name = new Argument<string>("NAME") { Description = string.Join(", ", known.Select(k => k.Name)) };
        var output = new Option<DirectoryInfo>("--output") { Description = "folder to download into", Required = true };
        var url = new Option<string?>("--url") { Description = "download from this URL instead of the public default" };
        var sha256 = new Option<string?>("--sha256")
        {
            HelpName = "HEX",
            Description = "the SHA-256 (64 hex digits) that the one file NAME downloads must have (for a dataset, its .zip before unpacking); " +
                "on a mismatch the run fails, no final file is left and the download is kept as FILE.bad (a rerun starts afresh)",
        };
        var command = new Command(verb, description) { name, output, url, sha256 };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string wanted = r.GetValue(name)!;
            var item = known.FirstOrDefault(k => k.Name.Equals(wanted, StringComparison.OrdinalIgnoreCase))
                ?? throw new CliException($"unknown name '{wanted}': use one of {string.Join(", ", known.Select(k => k.Name))}");
            if (r.GetValue(sha256) is { } hash)
            {
                if (!Regex.IsMatch(hash, "^[0-9a-fA-F]{64}$"))
                    throw new CliException($"--sha256 {hash}: 64 hexadecimal digits expected");
                item = item with { Sha256 = hash };
            }
            using var http = new HttpClient { Timeout = TimeSpan.FromHours(6) };
            try
            {
                string path = CliProgress.For(io).Run(item.FileName, 0, bar =>
                    new Downloader(http, io.Error, CliProgress.Select<(long Done, long? Total)>(bar, b => new(b.Done, b.Total ?? 0, "bytes")))
                        .GetAsync(item, r.GetValue(output)!.FullName, r.GetValue(url)).GetAwaiter().GetResult());
                io.Out.WriteLine(path);
                return ExitCodes.Success;
            }
            catch (DownloadException e)
            {
                throw new CliException(e.Message);
            }
        }));
        return command;
    }
}
