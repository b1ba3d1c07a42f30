// Preprocessor: a queue consumer that turns shard tasks into packed training shards.
// Standalone: ConnectionStrings__redis=127.0.0.1:6379 dotnet run --project src/ChineseClip.Preprocessor
using ChineseClip.Preprocessor.Extensions;

// appsettings.json from beside the binary, whatever the working directory.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddServiceDefaults();
builder.AddRedisClient("redis");
builder.AddPreprocessing();
builder.Build().Run();
