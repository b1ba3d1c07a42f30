// cnclip train --config FILE: fine-tune with the official recipe on this machine (one process for now).
using System.CommandLine;
using ChineseClip.Training;

namespace ChineseClip.Cli.Commands;

public static class TrainCommand
{
    public static Command Create(CliIO io)
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "JSON file with the official training arguments (train_data, val_data, arch, vocab, resume, batch_size, lr, wd, warmup, max_epochs, ...)",
            Required = true,
        };
        var command = new Command("train", "Fine-tune Chinese-CLIP with the official recipe; checkpoints in LOGS/NAME/checkpoints.") { config };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            var options = TrainOptions.Load(r.GetValue(config)!.FullName);
            var results = new Trainer(options, io.Out).Run();
            return ExitCodes.Success;
        }));
        return command;
    }
}
