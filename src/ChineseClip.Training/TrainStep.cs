// One single-process optimisation step of the official recipe (the data-parallel step arrives with collectives).
using ChineseClip.Model;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

/// <summary>What the official log line reports for a step: loss, in-batch accuracies both ways, logit scale.</summary>
public readonly record struct StepResult(float Loss, double ImageToTextAccuracy, double TextToImageAccuracy, float LogitScale,
    double AllReduceSeconds = 0);

public static class TrainStep
{
    static readonly SingleProcess Alone = new();

    /// <summary>Forward both towers, symmetric InfoNCE (over the global batch when data-parallel), backward,
    /// gradients summed across ranks (see GradientSync), AdamW step, logit-scale clamp.</summary>
    /// <param name="bf16">When set, the passes run on its bf16 copy of <paramref name="model"/> (fp32 master weights).</param>
    /// <param name="aggregate">false: the official skip_aggregate, each rank's loss over its own batch only (the
    /// gradients are still summed across ranks).</param>
    public static StepResult Run(ClipModel model, AdamW optimizer, Tensor pixels, Tensor ids, ICollectives? collectives = null,
        Bf16Compute? bf16 = null, bool aggregate = true)
    {
        using var scope = NewDisposeScope();
        var (loss, logits, allReduce) = Queue(model, optimizer, pixels, ids, collectives, bf16, aggregate);
        return Result(model, loss.item<float>(), logits) with { AllReduceSeconds = allReduce };
    }

    /// <summary><see cref="Run"/> without reading anything back: on a GPU every kernel of the step is queued (not
    /// necessarily run) when it returns, which lets a benchmark time the host's side of a step. The loss and logits
    /// belong to the caller's dispose scope.</summary>
    public static (Tensor Loss, Tensor Logits, double AllReduceSeconds) Queue(ClipModel model, AdamW optimizer, Tensor pixels, Tensor ids,
        ICollectives? collectives = null, Bf16Compute? bf16 = null, bool aggregate = true)
    {
        collectives ??= Alone;
        var net = Prepare(model, bf16);
        var output = Fp32(net.forward(pixels, ids));
        Tensor loss = ContrastiveLoss.ComputeGathered(output.ImageFeatures, output.TextFeatures, output.LogitScale, aggregate ? collectives : Alone, out Tensor logits);
        loss.backward();
        double allReduce = Update(model, optimizer, collectives, bf16);
        return (loss, logits, allReduce);
    }

    // After the backward passes: gradients to the fp32 master (bf16), summed across ranks, one AdamW step, logit-scale
    // clamp. Returns the seconds the all-reduce took.
    static double Update(ClipModel model, AdamW optimizer, ICollectives collectives, Bf16Compute? bf16)
    {
        bf16?.PushGradients();
        double allReduce = GradientSync.SumGradients(model, collectives);
        optimizer.step();
        OptimizerFactory.ClampLogitScale(model);
        return allReduce;
    }

    static ClipModel Prepare(ClipModel model, Bf16Compute? bf16)
    {
        if (bf16 is null)
        {
            GradientBucket.For(model).Zero();
            return model;
        }
        bf16.PullWeights();
        GradientBucket.For(bf16.Compute).Zero();
        return bf16.Compute;
    }

    // The loss (softmax and cross-entropy over the global batch) runs in fp32 whatever the towers ran in.
    static ClipOutput Fp32(ClipOutput o) => o.ImageFeatures.dtype == ScalarType.Float32 ? o
        : new ClipOutput(o.ImageFeatures.to(ScalarType.Float32), o.TextFeatures.to(ScalarType.Float32), o.LogitScale.to(ScalarType.Float32));

    /// <summary>One optimiser step over several micro-batches with the official accum_freq feature cache: all
    /// features are first computed without gradient; then each micro-batch is recomputed with gradient and the loss
    /// of the whole (global) batch is taken with that micro-batch's features in place of its cached ones. The summed
    /// gradients equal those of one step on the concatenated batch (with dropout off; with dropout on, the two
    /// forwards draw different masks, as in the official code).</summary>
    public static StepResult RunAccumulated(ClipModel model, AdamW optimizer, IReadOnlyList<(Tensor Pixels, Tensor Ids)> micro,
        ICollectives? collectives = null, Bf16Compute? bf16 = null, bool aggregate = true)
    {
        if (micro.Count == 1) return Run(model, optimizer, micro[0].Pixels, micro[0].Ids, collectives, bf16, aggregate);
        collectives ??= Alone;
        using var scope = NewDisposeScope();
        var net = Prepare(model, bf16);
        var images = new Tensor[micro.Count];
        var texts = new Tensor[micro.Count];
        using (no_grad())
        {
            for (int j = 0; j < micro.Count; j++)
            {
                var o = Fp32(net.forward(micro[j].Pixels, micro[j].Ids));
                (images[j], texts[j]) = (o.ImageFeatures, o.TextFeatures);
            }
        }
        Tensor? lastLogits = null;
        float loss = 0;
        for (int j = 0; j < micro.Count; j++)
        {
            using var microScope = NewDisposeScope();
            var o = Fp32(net.forward(micro[j].Pixels, micro[j].Ids));
            Tensor allImages = cat([.. images[..j], o.ImageFeatures, .. images[(j + 1)..]], 0);
            Tensor allTexts = cat([.. texts[..j], o.TextFeatures, .. texts[(j + 1)..]], 0);
            Tensor l = ContrastiveLoss.ComputeGathered(allImages, allTexts, o.LogitScale, aggregate ? collectives : Alone, out Tensor logits);
            l.backward();
            loss = l.item<float>();
            lastLogits?.Dispose();
            lastLogits = logits.detach().MoveToOuterDisposeScope();
        }
        double allReduce = Update(model, optimizer, collectives, bf16);
        return Result(model, loss, lastLogits!) with { AllReduceSeconds = allReduce };
    }

    /// <summary>One optimiser step in which this process computes several ranks of a larger data-parallel run, one
    /// after another (ranks_per_worker): part m of the batch is rank (this rank + world size x m) of that run. Each part
    /// is forwarded alone, as its rank would forward it; each part's loss is taken over every rank's features with its
    /// own (which keep their gradient) first and the others, detached, in rank order; the backward passes add into the
    /// same gradients, which the collectives then sum. That is the larger run's step up to the order of the float
    /// additions, and exactly its step where one process computes two ranks (x + y = y + x). The result is part 0's,
    /// as the larger run's rank reports its own.</summary>
    public static StepResult RunAsRanks(ClipModel model, AdamW optimizer, IReadOnlyList<(Tensor Pixels, Tensor Ids)> parts,
        ICollectives? collectives = null, Bf16Compute? bf16 = null, bool aggregate = true)
    {
        if (parts.Count == 1) return Run(model, optimizer, parts[0].Pixels, parts[0].Ids, collectives, bf16, aggregate);
        collectives ??= Alone;
        using var scope = NewDisposeScope();
        var net = Prepare(model, bf16);
        var outputs = parts.Select(p => Fp32(net.forward(p.Pixels, p.Ids))).ToList();
        int k = parts.Count, world = collectives.WorldSize;
        // Every rank of the larger run, detached, by its rank there: part m of worker w is rank w + world x m.
        Tensor[] ByRank(Func<ClipOutput, Tensor> features)
        {
            Tensor local = cat(outputs.Select(o => features(o).detach()).ToArray(), 0);
            Tensor[] workers = collectives.AllGather(local);
            var ranks = new Tensor[k * world];
            for (int w = 0; w < world; w++)
            {
                Tensor[] split = workers[w].chunk(k, 0);
                for (int m = 0; m < k; m++) ranks[w + world * m] = split[m];
            }
            return ranks;
        }
        Tensor[]? images = aggregate ? ByRank(o => o.ImageFeatures) : null;
        Tensor[]? texts = aggregate ? ByRank(o => o.TextFeatures) : null;
        float loss0 = 0;
        Tensor? logits0 = null;
        for (int m = 0; m < k; m++)
        {
            var o = outputs[m];
            int rank = collectives.Rank + world * m;
            Tensor Arranged(Tensor own, Tensor[] all) => cat([own, .. all.Where((_, r) => r != rank)], 0);
            Tensor l = aggregate
                ? ContrastiveLoss.Compute(Arranged(o.ImageFeatures, images!), Arranged(o.TextFeatures, texts!), o.LogitScale, out Tensor logits)
                : ContrastiveLoss.Compute(o.ImageFeatures, o.TextFeatures, o.LogitScale, out logits);
            l.backward();
            if (m == 0) (loss0, logits0) = (l.item<float>(), logits.detach());
        }
        double allReduce = Update(model, optimizer, collectives, bf16);
        return Result(model, loss0, logits0!) with { AllReduceSeconds = allReduce };
    }

    // In-batch accuracies as the official log reports them: argmax of each row (image->text) and column (text->image).
    static StepResult Result(ClipModel model, float loss, Tensor logits)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using Scalar batch = logits.shape[0];
        Tensor labels = arange(batch, dtype: ScalarType.Int64, device: logits.device);
        double i2t = logits.argmax(1).eq(labels).to(ScalarType.Float64).mean().item<double>();
        double t2i = logits.argmax(0).eq(labels).to(ScalarType.Float64).mean().item<double>();
        return new StepResult(loss, i2t, t2i, model.LogitScale.exp().item<float>());
    }
}
