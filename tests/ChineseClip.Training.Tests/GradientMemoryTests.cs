using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

/// <summary>Gradient checkpointing and the flat gradient bucket change where gradients and activations live, never
/// their values.</summary>
public class GradientMemoryTests
{
    static ClipModel TinyModel()
    {
        torch.manual_seed(7);
        return new ClipModel(Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json")));
    }

    static (Tensor Pixels, Tensor Ids) Batch()
    {
        torch.manual_seed(3);
        return (randn(3, 3, 64, 64), tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102, 101, 679, 102, 0 }, [3, 4]));
    }

    static Dictionary<string, Tensor> Gradients(bool checkpointing)
    {
        using var model = TinyModel();
        model.train(); // dropout on: the recomputation must draw the same masks
        model.SetGradCheckpointing(checkpointing);
        var (pixels, ids) = Batch();
        torch.manual_seed(11);
        var output = model.forward(pixels, ids);
        ContrastiveLoss.Compute(output.ImageFeatures, output.TextFeatures, output.LogitScale).backward();
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
    }

    [Fact]
    public void Checkpointed_blocks_give_the_gradients_of_the_plain_forward_with_dropout_on()
    {
        var plain = Gradients(checkpointing: false);
        var checkpointed = Gradients(checkpointing: true);
        Assert.Equal(plain.Keys, checkpointed.Keys);
        Assert.Contains(plain.Keys, k => k.Contains("resblocks")); // the blocks themselves got gradients
        Assert.Contains(plain.Keys, k => k.Contains("encoder.layer"));
        foreach (var (name, g) in plain)
        {
            Assert.True(g.abs().sum().item<float>() > 0 || !name.Contains("layer"), $"{name}: no gradient reached it");
            Assert.True(g.allclose(checkpointed[name], rtol: 1e-4, atol: 1e-6), $"{name}: max difference {(g - checkpointed[name]).abs().max().item<float>()}");
        }
    }

    [Fact]
    public void Checkpointing_is_refused_for_a_resnet_image_tower()
    {
        using var model = new ClipModel(Architectures.Resolve("RN50@RBT3-chinese"));
        var e = Assert.Throws<NotSupportedException>(() => model.SetGradCheckpointing(true));
        Assert.Contains("RN50", e.Message);
    }

    [Fact]
    public void Every_gradient_is_a_view_into_one_bucket_and_steps_accumulate_into_it()
    {
        using var model = TinyModel();
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config, lr: 1e-3));
        var (pixels, ids) = Batch();
        TrainStep.Run(model, optimizer, pixels, ids);
        var bucket = GradientBucket.For(model);
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        Assert.Equal(trainable.Sum(p => p.numel()), bucket.Flat.numel());
        double total = trainable.Sum(p => p.grad!.abs().sum().item<float>());
        Assert.True(total > 0);
        Assert.Equal(total, bucket.Flat.abs().sum().item<float>(), 1e-3 * total);
        // Writing through the bucket is seen by every parameter's .grad: they share its storage.
        bucket.Flat.fill_(2);
        Assert.All(trainable, p => Assert.Equal(2f, p.grad!.mean().item<float>()));
        Assert.Same(bucket, GradientBucket.For(model)); // made once, not per step
    }
}
