using ChineseClip.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

public class TensorLifetimeTests
{
    static long Live => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    [Fact]
    public void Training_steps_leave_no_live_tensors_behind()
    {
        torch.manual_seed(3);
        using var model = new ClipModel(Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json")));
        model.train();
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config, lr: 1e-4));
        using var pixels = randn(4, 3, 64, 64);
        using var ids = tensor(Enumerable.Range(0, 4).SelectMany(i => new long[] { 101, 2769 + i, 872, 102, 0, 0 }).ToArray(), [4, 6]);
        var micro = new List<(Tensor, Tensor)> { (pixels.narrow(0, 0, 2), ids.narrow(0, 0, 2)), (pixels.narrow(0, 2, 2), ids.narrow(0, 2, 2)) };

        // Warm up: the optimizer creates its moment tensors on the first step.
        TrainStep.Run(model, optimizer, pixels, ids);
        TrainStep.RunAccumulated(model, optimizer, micro);
        long before = Live;
        for (int i = 0; i < 10; i++)
        {
            TrainStep.Run(model, optimizer, pixels, ids);
            TrainStep.RunAccumulated(model, optimizer, micro);
            using (no_grad())
            using (var scope = NewDisposeScope())
                ClipModel.Normalize(model.EncodeImage(pixels));
        }
        Assert.Equal(before, Live);
    }
}
