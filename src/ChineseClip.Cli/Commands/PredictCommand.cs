// cnclip predict: top-k retrieval from feature files, the official make_topk_predictions(_tr).py output.
using System.CommandLine;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Training;

namespace ChineseClip.Cli.Commands;

public static class PredictCommand
{
    public static Option<string> DirectionOption() =>
        new Option<string>("--direction")
        {
            Description = "text-to-image ({\"text_id\", \"image_ids\"}) or image-to-text ({\"image_id\", \"text_ids\"})",
            DefaultValueFactory = _ => "text-to-image",
        }.AcceptOnlyFromAmongFluent("text-to-image", "image-to-text");

    public static RetrievalDirection Parse(string direction) =>
        direction == "image-to-text" ? RetrievalDirection.ImageToText : RetrievalDirection.TextToImage;

    public static Command Create(CliIO io)
    {
        var imageFeats = new Option<FileInfo>("--image-feats") { Description = "{split}_imgs.img_feat.jsonl", Required = true };
        var textFeats = new Option<FileInfo>("--text-feats") { Description = "{split}_texts.txt_feat.jsonl", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "prediction JSONL to write", Required = true };
        var topK = new Option<int>("--top-k") { Description = "results per query", DefaultValueFactory = _ => Evaluation.K };
        var direction = DirectionOption();
        var command = new Command("predict", "Top-k text->image (or image->text) predictions from feature files, official format.")
        {
            imageFeats, textFeats, output, topK, direction,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            int k = r.GetValue(topK);
            if (k < 1) throw new CliException($"--top-k {k}: must be at least 1");
            foreach (var f in new[] { r.GetValue(imageFeats)!, r.GetValue(textFeats)! })
                if (!f.Exists) throw new CliException($"{f.FullName}: feature file not found");
            var lines = Evaluation.Predict(r.GetValue(imageFeats)!.FullName, r.GetValue(textFeats)!.FullName, Parse(r.GetValue(direction)!), k).ToList();
            string path = r.GetValue(output)!.FullName;
            AtomicFile.Write(path, s =>
            {
                using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
                foreach (string line in lines) w.WriteLine(line);
            });
            io.Error.WriteLine($"{lines.Count} predictions written to {path}");
            return ExitCodes.Success;
        }));
        return command;
    }
}

static class OptionExtensions
{
    public static Option<string> AcceptOnlyFromAmongFluent(this Option<string> option, params string[] values)
    {
        option.AcceptOnlyFromAmong(values);
        return option;
    }
}
