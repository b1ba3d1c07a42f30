namespace ChineseClip.Model.Tests;

public class SmokeTests
{
    [Fact]
    public void TorchSharpLoadsAndComputes()
    {
        using var t = TorchSharp.torch.ones(2, 3);
        Assert.Equal(6f, t.sum().item<float>());
    }
}
