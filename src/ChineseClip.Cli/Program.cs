using ChineseClip.Cli;
using ChineseClip.Model.Runtime;

if (NativeAllocator.ReexecWithJemallocIfAvailable(args) is int childExit) return childExit;
return CliApp.Run(args, new CliIO(Console.In, Console.Out, Console.Error));
