using ChineseClip.Model.Runtime;
using ChineseClip.Worker.Extensions;

if (NativeAllocator.ReexecWithJemallocIfAvailable(args) is int childExit) return childExit;
if (!TorchNative.TryLoadFromEnvironment(Console.Error, "worker")) return 1;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddWorker();

var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();
return 0;
