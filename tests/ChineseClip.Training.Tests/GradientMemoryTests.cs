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
        // Every gradient, each start aligned to FlatLayout.Alignment elements: at most that much padding per tensor.
        long elements = trainable.Sum(p => p.numel());
        Assert.InRange(bucket.Flat.numel(), elements, elements + trainable.Count * FlatLayout.Alignment);
        double total = trainable.Sum(p => p.grad!.abs().sum().item<float>());
        Assert.True(total > 0);
        Assert.Equal(total, bucket.Flat.abs().sum().item<float>(), 1e-3 * total);
        // Writing through the bucket is seen by every parameter's .grad: they share its storage.
        using (Scalar two = 2) bucket.Flat.fill_(two);
        Assert.All(trainable, p => Assert.Equal(2f, p.grad!.mean().item<float>()));
        Assert.Same(bucket, GradientBucket.For(model)); // made once, not per step
    }

    [Fact]
    public void Mask_ratio_drops_patches_in_training_only_drawing_from_the_global_generator()
    {
        using var model = TinyModel();
        var (pixels, _) = Batch();
        Tensor Image(bool train, double ratio, int seed)
        {
            model.SetMaskRatio(ratio);
            model.train(train);
            torch.manual_seed(seed);
            using var _ = no_grad();
            return model.EncodeImage(pixels);
        }
        var evalAll = Image(train: false, ratio: 0, seed: 1);
        Assert.True(evalAll.equal(Image(train: false, ratio: 0.75, seed: 1)).all().item<bool>(), "evaluation must see every patch");
        var trainAll = Image(train: true, ratio: 0, seed: 1);
        var masked = Image(train: true, ratio: 0.75, seed: 1);
        Assert.False(trainAll.allclose(masked, rtol: 1e-3, atol: 1e-4), "dropping 75% of the patches changed nothing");
        Assert.True(masked.equal(Image(train: true, ratio: 0.75, seed: 1)).all().item<bool>(), "the same seed must drop the same patches");
        Assert.False(masked.allclose(Image(train: true, ratio: 0.75, seed: 2), rtol: 1e-3, atol: 1e-4), "another seed must drop other patches");
        Assert.Throws<NotSupportedException>(() => new ClipModel(Architectures.Resolve("RN50@RBT3-chinese")).SetMaskRatio(0.5));
    }
}
