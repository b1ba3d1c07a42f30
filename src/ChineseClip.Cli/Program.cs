using ChineseClip.Cli;
using ChineseClip.Model.Runtime;

if (NativeAllocator.ReexecWithJemallocIfAvailable(args) is int childExit) return childExit;
if (!TorchNative.TryLoadFromEnvironment(Console.Error, "cnclip")) return ExitCodes.BadInput;
return CliApp.Run(args, new CliIO(Console.In, Console.Out, Console.Error));
