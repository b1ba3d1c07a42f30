// The cluster, declared. Resources (redis, coordinator, workers, preprocessors) arrive with the cluster issue.
var builder = DistributedApplication.CreateBuilder(args);

builder.Build().Run();
