// Preprocessor: a queue consumer that turns shard tasks into packed training shards.
// Standalone: ConnectionStrings__redis=127.0.0.1:6379 dotnet run --project src/ChineseClip.Preprocessor
using ChineseClip.Preprocessor.Extensions;

// appsettings.json from beside the binary, whatever the working directory. A web host only for /health and /alive
// (the Redis client's own check included), which the AppHost polls.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddServiceDefaults();
builder.AddRedisClient("redis");
builder.AddPreprocessing();
var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();
