using ChineseClip.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training.Tests;

public class OptimizerFactoryTests
{
    [Theory]
    [InlineData("visual.ln_pre.weight", true)]
    [InlineData("visual.bn1.weight", true)]
    [InlineData("visual.transformer.resblocks.0.attn.in_proj_bias", true)]
    [InlineData("logit_scale", true)]
    [InlineData("bert.embeddings.LayerNorm.weight", false)] // case-sensitive: BERT's LayerNorm gets decay, as official
    [InlineData("bert.encoder.layer.0.attention.self.query.weight", false)]
    [InlineData("visual.conv1.weight", false)]
    [InlineData("text_projection", false)]
    public void The_no_decay_rule_is_the_official_case_sensitive_substring_rule(string name, bool noDecay) =>
        Assert.Equal(noDecay, OptimizerFactory.IsNoDecay(name));

    [Fact]
    public void Official_betas_and_eps_depend_on_the_image_tower()
    {
        Assert.Equal((0.98, 1e-6), (AdamWSettings.OfficialFor(Architectures.Resolve("ViT-B-16@RoBERTa-wwm-ext-base-chinese")) is var v ? (v.Beta2, v.Eps) : default));
        Assert.Equal((0.999, 1e-8), (AdamWSettings.OfficialFor(Architectures.Resolve("RN50@RBT3-chinese")) is var r ? (r.Beta2, r.Eps) : default));
    }

    [Fact]
    public void The_loss_is_the_mean_of_both_cross_entropies_over_the_batch()
    {
        using var img = nn.functional.normalize(tensor(new float[] { 1, 0, 0.6f, 0.8f }, [2, 2]), dim: 1);
        using var txt = nn.functional.normalize(tensor(new float[] { 0.8f, 0.6f, 0, 1 }, [2, 2]), dim: 1);
        using var scale = tensor(10f);
        float loss = ContrastiveLoss.Compute(img, txt, scale).item<float>();
        // By hand: logits = 10 * [[0.8, 0], [0.96, 0.8]]; rows -> image->text, columns -> text->image.
        double[,] l = { { 8, 0 }, { 9.6, 8 } };
        double Ce(double a, double b) => -a + Math.Log(Math.Exp(a) + Math.Exp(b));
        double imageToText = (Ce(l[0, 0], l[0, 1]) + Ce(l[1, 1], l[1, 0])) / 2;
        double textToImage = (Ce(l[0, 0], l[1, 0]) + Ce(l[1, 1], l[0, 1])) / 2;
        Assert.Equal((imageToText + textToImage) / 2, loss, 4);
    }

    [Fact]
    public void A_step_keeps_logit_scale_within_zero_and_ln_100()
    {
        using var model = new ClipModel(Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json")));
        using (no_grad())
        using (Scalar scale = 4.7)
            model.LogitScale.fill_(scale);
        using var optimizer = OptimizerFactory.CreateAdamW(model, AdamWSettings.OfficialFor(model.Config, lr: 1e-3));
        torch.manual_seed(1);
        using var pixels = randn(2, 3, 64, 64);
        using var ids = tensor(new long[] { 101, 2769, 102, 0, 101, 872, 1962, 102 }, [2, 4]);
        float loss = TrainStep.Run(model, optimizer, pixels, ids).Loss;
        Assert.True(float.IsFinite(loss));
        Assert.Equal(Math.Log(100), model.LogitScale.item<float>(), 5);
    }
}
