// Arguments are Garnet's own (--port, --bind, --memory, --checkpointdir, ...). Runs until SIGTERM or Ctrl+C.
using System.Runtime.InteropServices;
using Garnet;

using var server = new GarnetServer(args);
server.Start();
var stop = new TaskCompletionSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.TrySetResult();
});
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.TrySetResult();
};
Console.WriteLine($"Garnet is listening ({string.Join(' ', args)})");
await stop.Task;
