using ChineseClip.Model.Checkpoints;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

/// <summary>The CPU generator (dropout) state that a resume restores, read back from a checkpoint file as the workers
/// read it: each rank its own row of a two-rank checkpoint (rank 1's row is a view at an offset, which crashed the
/// worker process before the restore copied it).</summary>
public class GeneratorResumeTests
{
    [Fact]
    public void Each_rank_gets_its_own_generator_state_back_and_a_mismatched_world_size_gets_none()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("cnclip-rng").FullName, "step.pt");
        manual_seed(3);
        using var first = get_rng_state();
        using (rand(100)) { }
        using var second = get_rng_state();
        Assert.False(Same(first, second));
        using (var stacked = stack([first, second]))
            new OfficialCheckpoint { StateDict = [], Epoch = 0, Step = 1, Extra = { ["rng_state"] = first, ["rank_rng_states"] = stacked } }.Save(path);
        var loaded = OfficialCheckpoint.Load(path);

        foreach (var (rank, worldSize, expected) in new[] { (1, 2, second), (0, 2, first), (0, 1, first) })
        {
            manual_seed(99);
            Assert.True(CheckpointRotation.RestoreGenerator(loaded.Extra, rank, worldSize));
            using var now = get_rng_state();
            Assert.True(Same(now, expected), $"rank {rank} of {worldSize}");
        }
        manual_seed(99);
        using var seeded = get_rng_state();
        Assert.False(CheckpointRotation.RestoreGenerator(loaded.Extra, 0, 3));
        using var untouched = get_rng_state();
        Assert.True(Same(untouched, seeded));
        Directory.Delete(Path.GetDirectoryName(path)!, true);
    }

    static bool Same(Tensor a, Tensor b) => a.data<byte>().ToArray().AsSpan().SequenceEqual(b.data<byte>().ToArray());
}
