// cnclip index: search collections (a folder of items, vectors and an HNSW index; see ChineseClip.Search).
using System.CommandLine;

namespace ChineseClip.Cli.Commands;

public static class IndexCommand
{
    public static Command Create(CliIO io)
    {
        var command = new Command("index", "Build search collections.");
        command.Subcommands.Add(IndexBuildCommand.Create(io));
        return command;
    }
}
