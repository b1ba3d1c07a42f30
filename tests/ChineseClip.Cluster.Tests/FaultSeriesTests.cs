namespace ChineseClip.Cluster.Tests;

/// <summary>The fault series (FaultSeries) in its short form: small demo data, one fault of each kind. The long form
/// (10+ faults on the full demo) is tests/Benchmarks/fault-series.sh, which runs this test with its settings from the
/// environment. It runs alone, after every other collection (the "faults" collection disables parallelization): it
/// starts its own cluster, and neither the AppHost tests nor the "cluster" collection's running AppHost (four .NET
/// processes and redis-server, otherwise idle) compete with it for the CPU.</summary>
[Collection("faults")]
public sealed class FaultSeriesTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("cnclip-faults").FullName;

    [Fact]
    public async Task A_schedule_survives_a_seeded_series_of_faults_with_every_step_once_and_the_weights_of_a_run_without()
    {
        var settings = new FaultSeriesSettings { Faults = 5, Scale = 0.25, Epochs = [3, 1, 1] }.FromEnvironment();
        var series = new FaultSeries(settings, Console.WriteLine);
        var outcome = await series.RunAsync(_root);
        Console.WriteLine(FaultSeries.Summary(settings, outcome));
        Assert.True(outcome.Injected >= Math.Min(5, settings.Given?.Count ?? settings.Faults));
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition("faults", DisableParallelization = true)]
public sealed class FaultsCollection;
