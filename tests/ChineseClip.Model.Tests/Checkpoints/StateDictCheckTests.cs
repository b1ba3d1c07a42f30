using ChineseClip.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Model.Tests.Checkpoints;

public sealed class StateDictCheckTests
{
    [Fact]
    public void Mismatch_lists_missing_unexpected_and_mis_shaped_keys_one_per_line_after_a_summary()
    {
        var model = new Dictionary<string, Tensor> { ["a"] = torch.zeros(2, 3), ["b"] = torch.zeros(4), ["c"] = torch.zeros(1) };
        var loaded = new Dictionary<string, Tensor> { ["a"] = torch.zeros(3, 2), ["c"] = torch.zeros(1), ["d"] = torch.zeros(1) };

        var e = Assert.Throws<CheckpointMismatchException>(() => StateDictCheck.Compare(model, loaded));

        Assert.Equal(
            new[]
            {
                "state dict does not match the model: 1 missing, 1 unexpected, 1 mis-shaped key(s)",
                "missing: b",
                "unexpected: d",
                "mis-shaped: a: model [2, 3], checkpoint [3, 2]",
            },
            e.Message.Split('\n'));
        Assert.Equal(new[] { "b" }, e.Missing);
        Assert.Equal(new[] { "d" }, e.Unexpected);
    }

    [Fact]
    public void Matching_state_dicts_pass_and_copy_converts_fp16_values_into_fp32_parameters()
    {
        using var parameter = new TorchSharp.Modules.Parameter(torch.zeros(2, 2));
        var model = new Dictionary<string, Tensor> { ["w"] = parameter };
        var loaded = new Dictionary<string, Tensor> { ["w"] = torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2).to(ScalarType.Float16) };

        StateDictCheck.CopyInto(model, loaded);

        Assert.Equal(ScalarType.Float32, parameter.dtype);
        Assert.Equal(new float[] { 1, 2, 3, 4 }, parameter.data<float>().ToArray());
        Assert.True(parameter.requires_grad);
    }

    [Fact]
    public void Copy_refuses_before_changing_anything_when_keys_do_not_match()
    {
        var target = torch.zeros(2);
        var model = new Dictionary<string, Tensor> { ["w"] = target, ["b"] = torch.zeros(1) };
        var loaded = new Dictionary<string, Tensor> { ["w"] = torch.ones(2) };

        Assert.Throws<CheckpointMismatchException>(() => StateDictCheck.CopyInto(model, loaded));

        Assert.Equal(0f, target.sum().item<float>());
    }
}
