using ChineseClip.Coordinator.Extensions;
using ChineseClip.Coordinator.Services;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddCoordinator();

var app = builder.Build();
app.MapGrpcService<CoordinatorService>();
app.MapGrpcHealthChecksService();
app.MapDefaultEndpoints();
app.Run();
