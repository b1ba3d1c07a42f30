// cnclip convert-private-data: the user's images and captions -> the official layout, with a summary and rejects.
using System.CommandLine;
using System.Globalization;
using ChineseClip.Data.Private;

namespace ChineseClip.Cli.Commands;

public static class ConvertPrivateDataCommand
{
    public static Command Create(CliIO io)
    {
        var input = new Option<string>("--input") { Description = "a folder of images with same-name .txt captions, or a .jsonl/.csv manifest", Required = true };
        var output = new Option<DirectoryInfo>("--output") { Description = "folder for {split}_imgs.tsv, {split}_texts.jsonl, summary.json, rejects.jsonl", Required = true };
        var splits = new Option<string>("--splits") { Description = "train,valid,test fractions of the images", DefaultValueFactory = _ => "0.9,0.05,0.05" };
        var seed = new Option<int>("--seed") { Description = "seed of the split", DefaultValueFactory = _ => 0 };
        var command = new Command("convert-private-data", "Convert your own images and captions into the official dataset layout.")
        {
            input, output, splits, seed,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string text = r.GetValue(splits)!;
            var parts = text.Split(',');
            var fractions = parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) ? f : double.NaN).ToArray();
            if (fractions.Length != 3 || fractions.Any(f => double.IsNaN(f) || f < 0) || Math.Abs(fractions.Sum() - 1) > 1e-6)
                throw new CliException($"--splits {text}: three non-negative fractions summing to 1 are required, e.g. 0.9,0.05,0.05");
            string outDir = r.GetValue(output)!.FullName;
            var summary = CliProgress.For(io).Run("images", 0, progress => PrivateDataConverter.Convert(r.GetValue(input)!, outDir, fractions,
                r.GetValue(seed), progress: CliProgress.Select<(int Done, int Total)>(progress, p => new(p.Done, p.Total))));
            io.Error.WriteLine($"{summary.ImagesSeen} images seen: {summary.ImagesKept} kept, {summary.DuplicateImagesMerged} duplicates merged, " +
                $"{summary.ImagesRejected} rejected; {summary.Captions} captions; {summary.OtherRejected} other files or lines rejected " +
                $"(see {Path.Combine(outDir, "rejects.jsonl")}); " +
                string.Join(", ", summary.Splits.Select(s => $"{s.Key} {s.Value.Images}/{s.Value.Texts}")));
            return ExitCodes.Success;
        }));
        return command;
    }
}
