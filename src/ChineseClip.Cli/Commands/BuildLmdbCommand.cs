// cnclip build-lmdb: the official build_lmdb_dataset.py: {data_dir}/{split}_imgs.tsv + {split}_texts.jsonl -> {lmdb_dir}/{split}/{imgs,pairs}.
using System.CommandLine;
using ChineseClip.Data.Formats;

namespace ChineseClip.Cli.Commands;

public static class BuildLmdbCommand
{
    public static Command Create(CliIO io)
    {
        // The official script's flags are --data_dir/--lmdb_dir; both spellings are accepted.
        var dataDir = new Option<DirectoryInfo>("--data-dir", "--data_dir") { Description = "folder of {split}_imgs.tsv and {split}_texts.jsonl", Required = true };
        var splits = new Option<string>("--splits") { Description = "comma-separated splits, e.g. train,valid,test", Required = true };
        var lmdbDir = new Option<DirectoryInfo?>("--lmdb-dir", "--lmdb_dir") { Description = "output folder (default: {data-dir}/lmdb); each split becomes {lmdb-dir}/{split}/imgs and /pairs" };
        var command = new Command("build-lmdb", "Serialize tsv/jsonl splits into the official Chinese-CLIP LMDB layout (readable by the official trainer).")
        {
            dataDir, splits, lmdbDir,
        };
        command.SetAction(r => CliApp.Guard(io, () => Run(io, r.GetValue(dataDir)!, r.GetValue(splits)!, r.GetValue(lmdbDir))));
        return command;
    }

    static int Run(CliIO io, DirectoryInfo dataDir, string splitList, DirectoryInfo? lmdbDir)
    {
        if (!dataDir.Exists) throw new CliException($"{dataDir.FullName}: data directory not found");
        string[] splits = splitList.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct().ToArray();
        if (splits.Length == 0) throw new CliException($"--splits '{splitList}': name at least one split");
        string output = lmdbDir?.FullName ?? Path.Combine(dataDir.FullName, "lmdb");
        int errors = 0;
        var built = OfficialLmdb.Build(dataDir.FullName, output, splits, message =>
        {
            io.Error.WriteLine($"cnclip: error: {message}");
            errors++;
        });
        foreach (var counts in built)
            io.Out.WriteLine($"{counts.Split}: {counts.Images} images, {counts.Samples} pairs -> {Path.Combine(output, counts.Split)}");
        io.Out.Flush();
        return errors == 0 ? ExitCodes.Success : ExitCodes.BadInput;
    }
}
