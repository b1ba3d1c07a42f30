using ChineseClip.Model.Towers;
using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

public class FlatAdamWTests
{
    static ClipModel Model()
    {
        torch.manual_seed(3);
        var model = new ClipModel(Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json")));
        model.eval(); // no dropout: both runs must see the same forward
        return model;
    }

    // The optimizer the factory built before FlatAdamW: TorchSharp's own, per-parameter AdamW, same groups.
    internal static AdamW Reference(ClipModel model, AdamWSettings s)
    {
        var groups = OptimizerFactory.TrainableInGroupOrder(model);
        return optim.AdamW(
        [
            new AdamW.ParamGroup(groups[0].Select(p => p.Parameter), new AdamW.Options { LearningRate = s.Lr, beta1 = s.Beta1, beta2 = s.Beta2, eps = s.Eps, weight_decay = 0 }),
            new AdamW.ParamGroup(groups[1].Select(p => p.Parameter), new AdamW.Options { LearningRate = s.Lr, beta1 = s.Beta1, beta2 = s.Beta2, eps = s.Eps, weight_decay = s.WeightDecay }),
        ], s.Lr, s.Beta1, s.Beta2, s.Eps, s.WeightDecay);
    }

    static (Tensor Pixels, Tensor Ids) Batch()
    {
        torch.manual_seed(7);
        return (randn(4, 3, 64, 64), tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102, 101, 3221, 102, 0, 101, 6821, 4638, 102 }, [4, 4]));
    }

    static void Steps(ClipModel model, AdamW optimizer, int count, Action<int>? beforeStep = null)
    {
        var (pixels, ids) = Batch();
        for (int i = 0; i < count; i++)
        {
            foreach (var group in optimizer.ParamGroups) group.LearningRate = 1e-3 * (i + 1); // the schedule moves the rate
            beforeStep?.Invoke(i);
            TrainStep.Run(model, optimizer, pixels, ids);
        }
    }

    static readonly Scalar Tiny = 1e-12, Tinier = 1e-30;

    static double MaxRelativeDifference(IEnumerable<(string, Tensor)> a, IEnumerable<(string, Tensor)> b) =>
        a.Zip(b, (x, y) => ((x.Item2 - y.Item2).norm() / y.Item2.norm().add(Tiny, Sum.One)).item<float>()).Max();

    static double MaxRelativeDifference(Dictionary<string, object?> a, Dictionary<string, object?> b)
    {
        var sa = (Dictionary<object, object?>)a["state"]!;
        var sb = (Dictionary<object, object?>)b["state"]!;
        Assert.Equal(sb.Count, sa.Count);
        double worst = 0;
        foreach (var (key, value) in sb)
        {
            var x = (Dictionary<object, object?>)sa[key]!;
            var y = (Dictionary<object, object?>)value!;
            Assert.Equal(((Tensor)y["step"]!).item<float>(), ((Tensor)x["step"]!).item<float>());
            foreach (string moment in new[] { "exp_avg", "exp_avg_sq" })
                worst = Math.Max(worst, ((((Tensor)x[moment]!) - (Tensor)y[moment]!).norm() / ((Tensor)y[moment]!).norm().add(Tinier, Sum.One)).item<float>());
        }
        return worst;
    }

    [Fact]
    public void Flat_steps_make_the_updates_of_TorchSharps_per_parameter_AdamW()
    {
        using var flatModel = Model();
        using var referenceModel = Model();
        var settings = AdamWSettings.OfficialFor(flatModel.Config, lr: 1e-3, weightDecay: 0.1); // decay large enough to matter
        using var flat = (FlatAdamW)OptimizerFactory.CreateAdamW(flatModel, settings);
        using var reference = Reference(referenceModel, settings);

        Steps(flatModel, flat, 3);
        Steps(referenceModel, reference, 3);

        Assert.Equal((3, 0), (flat.FlatSteps, flat.FallbackSteps));
        double weights = MaxRelativeDifference(flatModel.named_parameters().Select(p => (p.name, (Tensor)p.parameter)),
            referenceModel.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));
        Assert.True(weights < 1e-6, $"weights differ by {weights:E2}");
        double moments = MaxRelativeDifference(OptimizerState.ToOfficial(flat), OptimizerState.ToOfficial(reference));
        Assert.True(moments < 1e-5, $"moments differ by {moments:E2}");
        // The weights moved (a step that did nothing would also "match").
        using var initial = Model();
        Assert.True(MaxRelativeDifference(flatModel.named_parameters().Select(p => (p.name, (Tensor)p.parameter)),
            initial.named_parameters().Select(p => (p.name, (Tensor)p.parameter))) > 1e-3);
    }

    [Fact]
    public void The_chunk_size_of_the_update_does_not_change_a_single_bit()
    {
        using var chunkedModel = Model();
        using var wholeModel = Model();
        var settings = AdamWSettings.OfficialFor(chunkedModel.Config, lr: 1e-3, weightDecay: 0.1);
        // 1000 elements: chunks end inside tensors and groups; 2^30: each group in one chunk.
        using var chunked = new FlatAdamW(chunkedModel, OptimizerFactory.Groups(chunkedModel, settings), settings) { ChunkElements = 1000 };
        using var whole = new FlatAdamW(wholeModel, OptimizerFactory.Groups(wholeModel, settings), settings) { ChunkElements = 1L << 30 };
        Steps(chunkedModel, chunked, 3);
        Steps(wholeModel, whole, 3);
        Assert.Equal((3, 3), (chunked.FlatSteps, whole.FlatSteps));
        foreach (var ((name, a), (_, b)) in chunkedModel.named_parameters().Zip(wholeModel.named_parameters()))
            Assert.True(a.allclose(b, rtol: 0, atol: 0), $"{name} differs");
        using var initial = Model();
        Assert.False(chunkedModel.named_parameters().First().parameter.allclose(initial.named_parameters().First().parameter, rtol: 0, atol: 0));
    }

    [Fact]
    public void Parameters_moments_and_gradients_share_one_layout()
    {
        using var model = Model();
        using var optimizer = (FlatAdamW)OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config));
        Steps(model, optimizer, 1);
        var bucket = GradientBucket.For(model);
        var groups = OptimizerFactory.TrainableInGroupOrder(model);
        Assert.Equal(groups.SelectMany(g => g).Select(p => p.Parameter), bucket.Parameters);
        // One flat buffer: each parameter starts where the previous one ends, rounded up to 64 elements (256 bytes),
        // and its gradient sits at the same offset in the bucket.
        var parameters = bucket.Parameters;
        nint Address(Tensor t) => ChineseClip.Model.Runtime.TorchNative.DataPointer(t);
        nint first = Address(parameters[0]);
        Assert.Equal(0, first % 64);
        for (int i = 1; i < parameters.Count; i++)
        {
            long end = (Address(parameters[i - 1]) - first) / 4 + parameters[i - 1].numel();
            Assert.Equal(first + (nint)((end + 63) / 64 * 64 * 4), Address(parameters[i]));
        }
        nint grads = Address(bucket.Flat);
        foreach (var p in parameters)
        {
            using var grad = p.grad!;
            Assert.Equal(Address(p) - first, Address(grad) - grads);
        }
    }

    [Fact]
    public void A_parameter_moved_out_of_the_flat_buffer_falls_back_to_the_per_parameter_step()
    {
        using var flatModel = Model();
        using var referenceModel = Model();
        var settings = AdamWSettings.OfficialFor(flatModel.Config, lr: 1e-3);
        using var flat = (FlatAdamW)OptimizerFactory.CreateAdamW(flatModel, settings);
        using var reference = Reference(referenceModel, settings);
        Steps(flatModel, flat, 3, beforeStep: i =>
        {
            if (i != 1) return;
            using var _ = no_grad();
            var p = flatModel.Visual.parameters().First();
            using var own = p.clone();
            p.set_(own); // its own storage now: the flat update would no longer reach it
        });
        Steps(referenceModel, reference, 3);

        Assert.Equal((1, 2), (flat.FlatSteps, flat.FallbackSteps));
        double weights = MaxRelativeDifference(flatModel.named_parameters().Select(p => (p.name, (Tensor)p.parameter)),
            referenceModel.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));
        Assert.True(weights < 1e-6, $"weights differ by {weights:E2}");
    }
}
