// cnclip convert-model: official .pt <-> Hugging Face ChineseCLIPModel safetensors (the seed's model_convert).
using System.CommandLine;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class ConvertModelCommand
{
    public static Command Create(CliIO io)
    {
        var input = new Option<FileInfo>("--input") { Description = "official .pt, plain state dict, or (official or HF) .safetensors", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "file to write (atomically)", Required = true };
        var to = new Option<string>("--to") { Description = "official (.pt, the official training layout) or hf (ChineseCLIPModel safetensors)", Required = true };
        to.AcceptOnlyFromAmong("official", "hf");
        var arch = new Option<string?>("--arch") { Description = "VISION@TEXT or .json: check every key and shape against this architecture" };
        var command = new Command("convert-model", "Convert a checkpoint between the official layout and Hugging Face safetensors.")
        {
            input, output, to, arch,
        };
        command.SetAction(r => CliApp.Guard(io, () => Run(io, r.GetValue(input)!, r.GetValue(output)!, r.GetValue(to)!, r.GetValue(arch))));
        return command;
    }

    static int Run(CliIO io, FileInfo input, FileInfo output, string to, string? archName)
    {
        if (!input.Exists) throw new CliException($"{input.FullName}: input checkpoint not found");
        if (Path.GetFullPath(input.FullName) == Path.GetFullPath(output.FullName))
            throw new CliException($"{output.FullName}: output must differ from the input");
        using var scope = NewDisposeScope();
        // Read the file once: an official checkpoint also brings its epoch/step/name; anything else (safetensors) has none.
        OfficialCheckpoint? source = TryLoadOfficial(input.FullName);
        Dictionary<string, Tensor> stateDict = source?.StateDict ?? CheckpointFormat.LoadAnyStateDict(input.FullName);
        if (archName is not null)
        {
            ClipConfig config = Architectures.Resolve(archName);
            using var model = new ClipModel(config);
            try
            {
                StateDictCheck.Compare(model.state_dict(), stateDict);
            }
            catch (CheckpointMismatchException e)
            {
                throw new CliException($"{input.FullName} does not fit {config.Name}: {e.Message.Split('\n')[0]}; first: " +
                    string.Join("; ", e.Message.Split('\n').Skip(1).Take(3)));
            }
        }
        output.Directory?.Create();
        if (to == "hf")
        {
            HfMapping.SaveSafetensors(output.FullName, stateDict);
        }
        else
        {
            // Keep the training metadata when the input is an official checkpoint; a converted HF file starts at 0.
            OfficialCheckpoint.Save(output.FullName, stateDict, source?.Epoch ?? 0, source?.Step ?? 0,
                source?.Name ?? Path.GetFileNameWithoutExtension(output.Name));
        }
        io.Error.WriteLine($"{stateDict.Count} tensors written to {output.FullName} ({to})");
        return ExitCodes.Success;
    }

    static OfficialCheckpoint? TryLoadOfficial(string path)
    {
        try
        {
            return OfficialCheckpoint.Load(path, loadOptimizer: false);
        }
        catch (CheckpointFormatException)
        {
            return null; // not a torch.save zip: a safetensors input
        }
    }
}
