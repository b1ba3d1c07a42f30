using ChineseClip.Contracts;

namespace ChineseClip.Coordinator.Tests.Contracts;

public class CheckpointLayoutTests
{
    [Fact]
    public void Checkpoints_have_the_official_names_in_the_run_folders_checkpoints_folder()
    {
        var layout = new CheckpointLayout("/runs/s/0-muge");
        Assert.Equal("/runs/s/0-muge/checkpoints", layout.Folder);
        Assert.Equal("/runs/s/0-muge/checkpoints/epoch_latest.pt", layout.Latest);
        Assert.Equal("/runs/s/0-muge/checkpoints/best.pt", layout.Best);
        Assert.Equal("/runs/s/0-muge/checkpoints/epoch3.pt", layout.Epoch(3));
        Assert.Equal("/runs/s/0-muge/checkpoints/epoch2_step40.pt", layout.Step(2, 40));
    }
}
