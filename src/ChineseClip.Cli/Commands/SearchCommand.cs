// cnclip search: one query (a text, or an image file) against a collection, with the model it was embedded with.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Model.Imaging;
using ChineseClip.Search;

namespace ChineseClip.Cli.Commands;

public static class SearchCommand
{
    public static Command Create(CliIO io)
    {
        var index = new Option<DirectoryInfo>("--index") { Description = "a collection folder (from index build)", Required = true };
        var text = new Option<string?>("--text") { Description = "a text query" };
        var image = new Option<FileInfo?>("--image") { Description = "an image file as the query" };
        var target = new Option<string>("--target") { Description = "images (text->image, image->image) or texts (image->text, text->text)", DefaultValueFactory = _ => "images" }
            .AcceptOnlyFromAmongFluent("images", "texts");
        var k = new Option<int>("--k") { Description = "results", DefaultValueFactory = _ => 10 };
        var exact = new Option<bool>("--exact") { Description = "exact search (a matrix product over every vector) instead of the HNSW index" };
        var json = new Option<bool>("--json") { Description = "one JSON object instead of a table" };
        var command = new Command("search", "Search a collection with a text or an image.") { index, text, image, target, k, exact, json };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string? query = r.GetValue(text);
            FileInfo? file = r.GetValue(image);
            if ((query is null) == (file is null)) throw new CliException("give one of --text or --image");
            if (query is not null && query.Trim().Length == 0) throw new CliException("--text: the query is empty");
            int count = r.GetValue(k);
            if (count < 1 || count > 1000) throw new CliException($"--k {count}: must be 1..1000");
            if (file is { Exists: false }) throw new CliException($"{file.FullName}: image not found");
            string dir = r.GetValue(index)!.FullName;
            using var version = CollectionVersion.Open(dir);
            using var embedder = ClipEmbedder.Load(version.Manifest.Model);
            var watch = Stopwatch.StartNew();
            float[] vector;
            try
            {
                vector = query is not null ? embedder.EmbedTexts([query]) : embedder.EmbedImages([File.ReadAllBytes(file!.FullName)]);
            }
            catch (InvalidImageException e)
            {
                throw new CliException($"{file!.FullName}: {e.Message}");
            }
            var searchTarget = SearchResults.ParseTarget(r.GetValue(target));
            var results = SearchResults.Describe(version, searchTarget, version.Search(searchTarget, vector, count, r.GetValue(exact)));
            double ms = watch.Elapsed.TotalMilliseconds;
            if (r.GetValue(json))
                io.Out.WriteLine(JsonSerializer.Serialize(new { results, took_ms = Math.Round(ms, 2), model = version.Manifest.Model }, CollectionFiles.Json));
            else
                for (int i = 0; i < results.Count; i++)
                    io.Out.WriteLine($"{i + 1}\t{results[i].Id}\t{results[i].Score:F4}\t{string.Join(" | ", results[i].Captions)}");
            return ExitCodes.Success;
        }));
        return command;
    }
}
