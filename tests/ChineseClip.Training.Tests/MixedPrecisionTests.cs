using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

/// <summary>bf16 compute with fp32 master weights: the weights AdamW updates stay fp32, and a few bf16 steps move
/// them as the fp32 steps do, within what bf16's 8-bit mantissa allows.</summary>
public class MixedPrecisionTests
{
    static ClipModel TinyModel()
    {
        torch.manual_seed(7);
        var model = new ClipModel(Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json")));
        model.eval(); // no dropout: both runs see the same function
        return model;
    }

    static Dictionary<string, Tensor> Train(bool bf16, int steps, out ClipModel model)
    {
        model = TinyModel();
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config, lr: 1e-3));
        using var compute = bf16 ? new Bf16Compute(model) : null;
        torch.manual_seed(3);
        using var pixels = randn(4, 3, 64, 64);
        using var ids = tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102, 101, 679, 102, 0, 101, 2769, 872, 102 }, [4, 4]);
        for (int i = 0; i < steps; i++) TrainStep.Run(model, optimizer, pixels, ids, bf16: compute);
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    [Fact]
    public void Bf16_steps_update_fp32_master_weights_as_fp32_steps_do()
    {
        using var initial = TinyModel();
        var start = initial.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var fp32 = Train(bf16: false, steps: 3, out var fp32Model);
        var bf16 = Train(bf16: true, steps: 3, out var bf16Model);
        using (fp32Model)
        using (bf16Model)
        {
            Assert.All(bf16Model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
            // AdamW normalises each update, so on parameters whose gradients are tiny bf16's rounding decides the
            // sign: compare the update of the whole model, where the direction must survive.
            var names = fp32.Keys.ToList();
            using Tensor fullStep = cat(names.Select(n => (fp32[n] - start[n]).flatten()).ToList());
            using Tensor halfStep = cat(names.Select(n => (bf16[n] - start[n]).flatten()).ToList());
            double relative = (fullStep - halfStep).norm().item<float>() / fullStep.norm().item<float>();
            double cosine = (fullStep * halfStep).sum().item<float>() / (fullStep.norm().item<float>() * halfStep.norm().item<float>());
            Assert.True(relative < 0.25 && cosine > 0.97, $"bf16 update vs fp32: relative difference {relative:P1}, cosine {cosine:F3}");
            int compared = names.Count;
            Assert.True(compared > 10, "too few parameters moved to compare");
        }
    }

    [Fact]
    public void The_compute_copy_is_bf16_and_its_gradients_land_in_the_fp32_bucket()
    {
        using var model = TinyModel();
        using var compute = new Bf16Compute(model);
        Assert.All(compute.Compute.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config, lr: 1e-3));
        torch.manual_seed(3);
        using var pixels = randn(2, 3, 64, 64);
        using var ids = tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102 }, [2, 4]);
        TrainStep.Run(model, optimizer, pixels, ids, bf16: compute);
        var master = GradientBucket.For(model).Flat;
        var half = GradientBucket.For(compute.Compute).Flat;
        Assert.Equal(ScalarType.Float32, master.dtype);
        Assert.Equal(ScalarType.BFloat16, half.dtype);
        Assert.True(master.abs().sum().item<float>() > 0);
        Assert.True(master.allclose(half.to(ScalarType.Float32), rtol: 0, atol: 0), "the fp32 gradients are not the cast bf16 ones");
    }

    // Losses and fp32 master weights after `steps` bf16 steps, re-cast per tensor or with the one flat copy.
    static (List<float> Losses, Dictionary<string, Tensor> Weights, Bf16Compute Compute, ClipModel Model) TrainBf16(bool flatCopy, int steps,
        Func<ClipModel, TorchSharp.Modules.AdamW>? optimizerFor = null, Action<ClipModel, int>? beforeStep = null)
    {
        var model = TinyModel();
        var compute = new Bf16Compute(model) { FlatCopy = flatCopy };
        using var optimizer = optimizerFor?.Invoke(model) ?? OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config, lr: 1e-3));
        torch.manual_seed(3);
        using var pixels = randn(4, 3, 64, 64);
        using var ids = tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102, 101, 679, 102, 0, 101, 2769, 872, 102 }, [4, 4]);
        var losses = new List<float>();
        for (int i = 0; i < steps; i++)
        {
            beforeStep?.Invoke(model, i);
            losses.Add(TrainStep.Run(model, optimizer, pixels, ids, bf16: compute).Loss);
        }
        return (losses, model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone()), compute, model);
    }

    static void AssertSame((List<float> Losses, Dictionary<string, Tensor> Weights, Bf16Compute, ClipModel) expected,
        (List<float> Losses, Dictionary<string, Tensor> Weights, Bf16Compute, ClipModel) actual)
    {
        Assert.Equal(expected.Losses, actual.Losses);
        foreach (var (name, w) in expected.Weights)
            Assert.True(actual.Weights[name].allclose(w, rtol: 0, atol: 0), $"{name}: the weights differ");
    }

    [Fact]
    public void The_flat_bf16_copy_gives_the_per_tensor_recasts_weights_and_losses()
    {
        var perTensor = TrainBf16(flatCopy: false, steps: 3);
        var flat = TrainBf16(flatCopy: true, steps: 3);
        using (perTensor.Model)
        using (perTensor.Compute)
        using (flat.Model)
        using (flat.Compute)
        {
            Assert.Equal(3, flat.Compute.FlatPulls);
            Assert.Equal(0, flat.Compute.PerTensorPulls);
            Assert.Equal(3, perTensor.Compute.PerTensorPulls);
            AssertSame(perTensor, flat);
            // Every trainable parameter of the copy is a bf16 view into one buffer, at the fp32 flat buffer's offsets
            // (64-element aligned starts), and equals its master cast to bf16.
            Assert.Null(FlatAdamW.Of(flat.Model)); // a disposed optimizer is forgotten: a re-cast now goes per tensor
            flat.Compute.PullWeights();
            Assert.Equal(1, flat.Compute.PerTensorPulls);
            var copies = flat.Compute.Compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var addresses = copies.Values.Where(p => p.requires_grad).Select(p => (long)Model.Runtime.TorchNative.DataPointer(p)).Order().ToList();
            long first = addresses[0];
            Assert.All(addresses, a => Assert.Equal(0, (a - first) % (2 * Distributed.FlatLayout.Alignment)));
            foreach (var (name, w) in flat.Weights)
                Assert.True(copies[name].allclose(w.to(ScalarType.BFloat16), rtol: 0, atol: 0), $"{name}: the bf16 copy is not the cast master");
        }
    }

    [Fact]
    public void The_flat_bf16_copy_falls_back_to_per_tensor_when_the_layout_does_not_hold()
    {
        // TorchSharp's own AdamW has no flat buffer: every re-cast is per tensor, with the same result.
        var expected = TrainBf16(flatCopy: false, steps: 2);
        var plain = TrainBf16(flatCopy: true, steps: 2, optimizerFor: m => FlatAdamWTests.Reference(m, AdamWSettings.OfficialFor(m.Config, lr: 1e-3)));
        var perTensorAdamW = TrainBf16(flatCopy: false, steps: 2, optimizerFor: m => FlatAdamWTests.Reference(m, AdamWSettings.OfficialFor(m.Config, lr: 1e-3)));
        // A master parameter moved out of the flat buffer after the first step: from then on per tensor.
        var moved = TrainBf16(flatCopy: true, steps: 2, beforeStep: (m, i) =>
        {
            if (i != 1) return;
            using var _ = no_grad();
            var p = m.named_parameters().First(p => p.name.EndsWith("query.weight")).parameter;
            p.set_(p.detach().clone());
        });
        using (expected.Model) using (expected.Compute) using (plain.Model) using (plain.Compute)
        using (perTensorAdamW.Model) using (perTensorAdamW.Compute) using (moved.Model) using (moved.Compute)
        {
            Assert.Equal((0, 2), (plain.Compute.FlatPulls, plain.Compute.PerTensorPulls));
            AssertSame(perTensorAdamW, plain);
            Assert.Equal((1, 1), (moved.Compute.FlatPulls, moved.Compute.PerTensorPulls));
            Assert.Equal(expected.Losses, moved.Losses);
        }
    }
}
