// cnclip evaluate: recall of a prediction file against the ground truth, the official evaluation(_tr).py semantics
// and output JSON ({"success", "score", "scoreJson": {"score", "mean_recall", "r1", "r5", "r10"}}).
using System.CommandLine;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Training;

namespace ChineseClip.Cli.Commands;

public static class EvaluateCommand
{
    public static Command Create(CliIO io)
    {
        var truth = new Option<FileInfo>("--ground-truth") { Description = "{split}_texts.jsonl with image_ids", Required = true };
        var predictions = new Option<FileInfo>("--predictions") { Description = "output of cnclip predict (or the official scripts)", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "result JSON to write (also printed)", Required = true };
        var direction = PredictCommand.DirectionOption();
        var command = new Command("evaluate", "Score predictions: R@1/5/10 and mean recall, the official evaluation JSON.")
        {
            truth, predictions, output, direction,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            string outputPath = r.GetValue(output)!.FullName;
            var d = PredictCommand.Parse(r.GetValue(direction)!);
            string json;
            int code;
            try
            {
                foreach (var f in new[] { r.GetValue(truth)!, r.GetValue(predictions)! })
                    if (!f.Exists) throw new InvalidDataException($"{f.FullName}: file not found");
                var score = Evaluation.Score(Evaluation.GroundTruth(r.GetValue(truth)!.FullName, d), r.GetValue(predictions)!.FullName, d);
                json = score.ToOfficialJson();
                code = ExitCodes.Success;
            }
            catch (InvalidDataException e)
            {
                // As the official script: the failure is written to the output JSON too.
                json = EvaluationScore.OfficialErrorJson(e.Message);
                io.Error.WriteLine($"cnclip: error: {e.Message}");
                code = ExitCodes.BadInput;
            }
            AtomicFile.Write(outputPath, s => s.Write(System.Text.Encoding.UTF8.GetBytes(json)));
            io.Out.WriteLine(json);
            return code;
        }));
        return command;
    }
}
