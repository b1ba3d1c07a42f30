using ChineseClip.Model.Runtime;
using ChineseClip.SearchService;

if (NativeAllocator.ReexecWithJemallocIfAvailable(args) is int childExit) return childExit;
if (!TorchNative.TryLoadFromEnvironment(Console.Error, "search")) return 1;

SearchServiceApp.Build(args).Run();
return 0;
