// The fine-tuning loop of the official recipe: epochs of sampler batches, the cosine LR schedule, the official log
// line, validation recall each epoch, and checkpoints (epoch_latest.pt, epoch{N}.pt, best.pt) in the official layout
// with what an exact mid-epoch resume needs. Data-parallel: every rank runs this loop on its slice of each global
// batch with the same collectives; rank 0 alone validates and writes the run folder.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ChineseClip.Contracts;
using ChineseClip.Data.Datasets;
using ChineseClip.Data.Shards;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public sealed record ValidationResult(int Epoch, Recall TextToImage, Recall ImageToText)
{
    public double MeanRecall => (TextToImage.Mean + ImageToText.Mean) / 2;
}

/// <summary>What a running stage reports (a worker forwards it to the coordinator): after each logged step, and
/// with <see cref="Validation"/> set after each validation.</summary>
public sealed record TrainProgress(int Epoch, int Epochs, long Step, long Steps, double Loss, double Lr, double SamplesPerSecond,
    double DataSeconds, double ComputeSeconds, double AllReduceSeconds, double EtaSeconds, ValidationResult? Validation = null);

public sealed class Trainer(TrainOptions options, TextWriter log, ICollectives? collectives = null)
{
    /// <summary>Called on rank 0 after each logged step and each validation.</summary>
    public Action<TrainProgress>? OnProgress { get; init; }

    /// <summary>Called on rank 0 once a checkpoint to resume from is complete (epoch_latest.pt, or a step checkpoint),
    /// with its path and the global step it holds.</summary>
    public Action<string, long>? OnCheckpoint { get; init; }

    readonly ICollectives _group = collectives ?? new SingleProcess();
    bool IsMaster => _group.Rank == 0;

    public string RunDir => Path.Combine(options.Logs, options.Name);

    public CheckpointLayout Checkpoints => new(RunDir);

    /// <summary>Runs the whole schedule; returns the validation results (empty without val_data).</summary>
    public IReadOnlyList<ValidationResult> Run(CancellationToken cancel = default)
    {
        torch.set_num_threads(options.Threads);
        Device device = DeviceSettings.Resolve(options.Device);
        if (device.type == DeviceType.CUDA) DeviceSettings.ApplyCudaSwitches(options.Tf32, options.SdpaBackend);
        ClipConfig config = Architectures.Resolve(options.Arch);
        var tokenizer = ClipTokenizer.FromVocabFile(options.Vocab);
        if (tokenizer.VocabSize != config.VocabSize)
            throw new InvalidDataException($"{options.Vocab}: {tokenizer.VocabSize} tokens, but {config.Name} has vocab_size {config.VocabSize}");
        var transform = new ImageTransform(config.ImageResolution);
        IPairBatches train = options.TrainShards is null ? LoadSplit(options.TrainData, "train", transform, tokenizer) : OpenShards(config);
        var augment = options.UseAugment ? new TrainAugment(config.ImageResolution, options.Seed) : null;
        var valid = options.ValData is null || !IsMaster ? null : LoadSplit(options.ValData, "valid", transform, tokenizer);

        torch.manual_seed(options.Seed);
        using var model = new ClipModel(config);
        model.to(device);
        if (_group.WorldSize > 1)
        {
            GradientSync.BroadcastWeights(model, _group);
            torch.manual_seed(options.Seed + _group.Rank); // each rank its own dropout masks
        }
        if (options.FreezeVision)
            foreach (var p in model.Visual.parameters()) p.requires_grad = false;
        if (options.GradCheckpointing) model.SetGradCheckpointing(true);
        using var bf16 = options.Precision == "bf16" ? new Bf16Compute(model) : null;
        if (options.GradCheckpointing) bf16?.Compute.SetGradCheckpointing(true);
        if (options.MaskRatio > 0)
        {
            model.SetMaskRatio(options.MaskRatio);
            bf16?.Compute.SetMaskRatio(options.MaskRatio);
        }
        var defaults = AdamWSettings.OfficialFor(config, options.Lr, options.Wd);
        var settings = defaults with { Beta1 = options.Beta1 ?? defaults.Beta1, Beta2 = options.Beta2 ?? defaults.Beta2, Eps = options.Eps ?? defaults.Eps };
        using var optimizer = OptimizerFactory.CreateAdamW(model, settings);

        var sampler = new EpochSampler(train.Count, options.BatchSize, _group.WorldSize, _group.Rank, options.Seed);
        int globalBatch = options.BatchSize * options.AccumFreq * _group.WorldSize;
        int stepsPerEpoch = sampler.BatchesPerEpoch / options.AccumFreq;
        if (stepsPerEpoch == 0)
            throw new InvalidDataException($"{options.TrainData}: {sampler.BatchesPerEpoch} batch(es) per epoch is fewer than accum_freq {options.AccumFreq}");
        // As official: max_steps, when given, sets the step count and max_epochs (rounded up); training stops there.
        int maxEpochs = options.MaxSteps is int ms ? (int)Math.Ceiling((double)ms * options.AccumFreq / sampler.BatchesPerEpoch) : options.MaxEpochs;
        int totalSteps = options.MaxSteps ?? stepsPerEpoch * maxEpochs;
        var (startEpoch, step, best) = options.Resume is null ? (0, 0, double.NegativeInfinity) : Resume(model, optimizer, stepsPerEpoch);
        var schedule = new LrSchedule(options.Lr, options.Warmup, totalSteps);
        double LrAt(int step) => options.SkipScheduler ? options.Lr : schedule.At(step);
        var checkpoints = Checkpoints;
        if (IsMaster) Directory.CreateDirectory(checkpoints.Folder);
        // A resumed run continues its metrics; a fresh one (or one reset to epoch 0) starts them anew.
        bool continuing = options.Resume is not null && !options.ResetDataOffset;
        using var metrics = IsMaster ? new StreamWriter(Path.Combine(RunDir, "metrics.jsonl"), append: continuing) { AutoFlush = true } : StreamWriter.Null;
        if (continuing) metrics.WriteLine(JsonSerializer.Serialize(new { type = "resume", step, epoch = startEpoch + 1, from = options.Resume, world_size = _group.WorldSize }));
        log.WriteLine($"{config.Name}: {train.Count} training pairs, {stepsPerEpoch} steps per epoch, {totalSteps} steps" +
            (_group.WorldSize > 1 ? $", rank {_group.Rank} of {_group.WorldSize}" : "") + $"; logs in {RunDir}");

        var results = new List<ValidationResult>();
        TrainProgress? last = null;
        ValidationResult ValidateAndReport(int epoch, int step, bool atEpochEnd)
        {
            var v = Validate(model, valid!, epoch + 1);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Validation {(atEpochEnd ? $"epoch {epoch + 1}" : $"step {step} (epoch {epoch + 1})")}: " +
                $"text->image R@1/5/10 {v.TextToImage.R1:F2}/{v.TextToImage.R5:F2}/{v.TextToImage.R10:F2}, " +
                $"image->text R@1/5/10 {v.ImageToText.R1:F2}/{v.ImageToText.R5:F2}/{v.ImageToText.R10:F2}, mean recall {v.MeanRecall:F2}"));
            if (last is not null) OnProgress?.Invoke(last with { Validation = v });
            metrics.WriteLine(JsonSerializer.Serialize(new
            {
                type = "valid", step, epoch = epoch + 1, epoch_end = atEpochEnd, t2i = v.TextToImage, i2t = v.ImageToText, mean_recall = v.MeanRecall,
            }));
            return v;
        }

        var runWatch = Stopwatch.StartNew();
        int firstStep = step;
        for (int epoch = startEpoch; epoch < maxEpochs; epoch++)
        {
            using var epochSpan = TrainingTelemetry.Source.StartActivity($"epoch {epoch + 1}");
            epochSpan?.SetTag("cnclip.epoch", epoch + 1);
            epochSpan?.SetTag("cnclip.rank", _group.Rank);
            epochSpan?.SetTag("cnclip.first_step", step + 1);
            model.train();
            if (options.FreezeVision) FreezeBatchNorm(model);
            var dataWatch = Stopwatch.StartNew();
            int batchIndex = step - epoch * stepsPerEpoch; // optimiser steps done in this epoch
            // Batches beyond a multiple of accum_freq are dropped, as the official loop does.
            foreach (int[][] batches in sampler.Batches(epoch, skipBatches: batchIndex * options.AccumFreq, positions: true)
                .Take((stepsPerEpoch - batchIndex) * options.AccumFreq).Chunk(options.AccumFreq))
            {
                cancel.ThrowIfCancellationRequested();
                if (step >= totalSteps) break; // max_steps reached inside the epoch
                double lr = LrAt(step);
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
                StepResult result;
                double dataTime, batchTime;
                using (var scope = NewDisposeScope())
                {
                    var micro = batches.Select(positions => TrainBatch(train, positions, augment, epoch))
                        .Select(b => device.type == DeviceType.CPU ? b : (b.Pixels.to(device), b.Ids.to(device))).ToList();
                    dataTime = dataWatch.Elapsed.TotalSeconds;
                    result = TrainStep.RunAccumulated(model, optimizer, micro, _group, bf16, aggregate: !options.SkipAggregate);
                    batchTime = dataWatch.Elapsed.TotalSeconds;
                }
                step++;
                batchIndex++;
                if (step % options.LogInterval == 0 || batchIndex == stepsPerEpoch)
                {
                    int seen = batchIndex * globalBatch;
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"Global Steps: {step}/{totalSteps} | Train Epoch: {epoch + 1} [{seen}/{sampler.PaddedSize} ({100.0 * seen / sampler.PaddedSize:F0}%)] | " +
                        $"Loss: {result.Loss:F6} | Image2Text Acc: {result.ImageToTextAccuracy * 100:F2} | Text2Image Acc: {result.TextToImageAccuracy * 100:F2} | " +
                        $"Data Time: {dataTime:F3}s | Batch Time: {batchTime:F3}s (compute {batchTime - dataTime - result.AllReduceSeconds:F3}s, " +
                        $"all-reduce {result.AllReduceSeconds:F3}s) | LR: {lr:F6} | logit_scale: {result.LogitScale:F3} | " +
                        $"Global Batch Size: {globalBatch} | {globalBatch / batchTime:F1} samples/s"));
                    double eta = runWatch.Elapsed.TotalSeconds / (step - firstStep) * (totalSteps - step);
                    last = new TrainProgress(epoch + 1, maxEpochs, step, totalSteps, result.Loss, lr, globalBatch / batchTime,
                        dataTime, batchTime - dataTime - result.AllReduceSeconds, result.AllReduceSeconds, eta);
                    if (IsMaster) OnProgress?.Invoke(last);
                    metrics.WriteLine(JsonSerializer.Serialize(new
                    {
                        type = "train", step, epoch = epoch + 1, loss = result.Loss, i2t_acc = result.ImageToTextAccuracy,
                        t2i_acc = result.TextToImageAccuracy, lr, logit_scale = result.LogitScale, data_time = dataTime, batch_time = batchTime,
                        compute_time = batchTime - dataTime - result.AllReduceSeconds, allreduce_time = result.AllReduceSeconds,
                    }));
                }
                if (options.SaveStepFrequency > 0 && step % options.SaveStepFrequency == 0 && batchIndex < stepsPerEpoch)
                    Save(checkpoints.Step(epoch + 1, step), model, optimizer, epoch, step, best);
                // The official valid_step_interval: validation inside the epoch too (logged and reported; best.pt is
                // chosen among the epoch-end validations, where every rank writes a checkpoint).
                if (valid is not null && options.ValidStepInterval is int every && step % every == 0 && batchIndex < stepsPerEpoch)
                {
                    ValidateAndReport(epoch, step, atEpochEnd: false);
                    model.train();
                    if (options.FreezeVision) FreezeBatchNorm(model);
                }
                dataWatch.Restart();
            }

            epochSpan?.SetTag("cnclip.last_step", step);
            ValidationResult? validation = null;
            if (valid is not null && ((epoch + 1) % options.ValidEpochInterval == 0 || epoch + 1 == maxEpochs))
            {
                validation = ValidateAndReport(epoch, step, atEpochEnd: true);
                results.Add(validation);
                epochSpan?.SetTag("cnclip.valid.mean_recall", validation.MeanRecall);
            }

            bool isBest = validation is not null && validation.MeanRecall > best;
            if (isBest) best = validation!.MeanRecall;
            // epoch_latest.pt every epoch; epoch{N}.pt every save_epoch_frequency epochs and after the last (official).
            string latest = checkpoints.Latest;
            Save(latest, model, optimizer, epoch + 1, step, best);
            if (!IsMaster) continue;
            void CopyAtomically(string to)
            {
                File.Copy(latest, to + ".tmp", overwrite: true);
                File.Move(to + ".tmp", to, overwrite: true);
            }
            if ((epoch + 1) % options.SaveEpochFrequency == 0 || epoch + 1 == maxEpochs) CopyAtomically(checkpoints.Epoch(epoch + 1));
            if (isBest) CopyAtomically(checkpoints.Best);
        }
        return results;
    }

    // A sample's augmentation is keyed by its position in the padded epoch, which every world size agrees on.
    static (Tensor Pixels, Tensor Ids) TrainBatch(IPairBatches train, int[] positions, TrainAugment? augment, int epoch)
    {
        int[] indices = positions.Select(p => p % train.Count).ToArray();
        return train.Batch(indices, augment is null ? null : new BatchAugmentation(augment, epoch, positions.Select(p => (long)p).ToArray()));
    }

    // The official freeze_vision also keeps the image tower's BatchNorm statistics fixed (RN50).
    static void FreezeBatchNorm(ClipModel model)
    {
        foreach (var m in model.Visual.modules().OfType<TorchSharp.Modules.BatchNorm2d>()) m.eval();
    }

    const string RngStateKey = "rng_state";
    const string RankRngStatesKey = "rank_rng_states";
    const string BestKey = "best_mean_recall";

    /// <summary>The official layout plus what an exact resume needs: AdamW moments (torch's state_dict layout), the
    /// CPU generator state (dropout), and the best mean recall so far. "epoch" counts completed epochs; the position
    /// inside the epoch follows from "step".</summary>
    void Save(string path, ClipModel model, AdamW optimizer, int epoch, int step, double best)
    {
        // Every rank's generator state goes into the checkpoint (a collective: all ranks are here); rank 0 writes it.
        using Tensor rng = torch.get_rng_state();
        Tensor[] rngStates = _group.AllGather(rng);
        if (!IsMaster) return;
        var checkpoint = new OfficialCheckpoint
        {
            StateDict = model.state_dict(), Epoch = epoch, Step = step, Name = options.Name,
            Optimizer = OptimizerState.ToOfficial(optimizer),
        };
        checkpoint.Extra[RngStateKey] = rng;
        if (_group.WorldSize > 1) checkpoint.Extra[RankRngStatesKey] = stack(rngStates);
        if (!double.IsNegativeInfinity(best)) checkpoint.Extra[BestKey] = best;
        checkpoint.Save(path);
        OnCheckpoint?.Invoke(path, step);
    }

    (int Epoch, int Step, double Best) Resume(ClipModel model, AdamW optimizer, int stepsPerEpoch)
    {
        string path = options.Resume!;
        var checkpoint = OfficialCheckpoint.Load(path);
        try
        {
            model.LoadWeights(checkpoint.StateDict);
        }
        catch (CheckpointMismatchException e)
        {
            throw new ModelLoadException($"{path} does not fit {model.Config.Name}: {e.Message.Split('\n')[0]}", e);
        }
        if (!options.ResetOptimizer)
        {
            if (checkpoint.Optimizer is null) log.WriteLine($"{path} holds no optimizer state (a released checkpoint?): starting AdamW afresh");
            else OptimizerState.LoadOfficial(optimizer, checkpoint.Optimizer, path);
        }
        if (options.ResetDataOffset)
        {
            log.WriteLine($"starting from the weights of {path} at epoch 1, step 0 " +
                $"(optimizer {(options.ResetOptimizer || checkpoint.Optimizer is null ? "fresh" : "restored")})");
            return (0, 0, double.NegativeInfinity);
        }
        int epoch = checkpoint.Epoch ?? 0, step = (int)(checkpoint.Step ?? 0);
        int offset = step - epoch * stepsPerEpoch;
        if (offset < 0 || offset > stepsPerEpoch)
            throw new InvalidDataException($"{path}: epoch {epoch}, step {step} does not fit {stepsPerEpoch} steps per epoch " +
                "(another dataset or batch size?); set reset_data_offset to start at epoch 0");
        if (checkpoint.Extra.TryGetValue(RankRngStatesKey, out object? ranks) && ranks is Tensor states && states.shape[0] == _group.WorldSize)
            torch.set_rng_state(states[_group.Rank]);
        else if (checkpoint.Extra.TryGetValue(RngStateKey, out object? rng) && rng is Tensor rngState && _group.WorldSize == 1)
            torch.set_rng_state(rngState);
        double best = checkpoint.Extra.TryGetValue(BestKey, out object? b) && b is double d ? d : double.NegativeInfinity;
        log.WriteLine($"resuming from {path}: epoch {epoch + 1}, global step {step} ({offset} of {stepsPerEpoch} steps of the epoch done)");
        return (epoch, step, best);
    }

    ShardSet OpenShards(ClipConfig config)
    {
        var shards = ShardSet.Open(options.TrainShards!, "train");
        if (shards.Count == 0) throw new InvalidDataException($"{options.TrainShards}: the train shards hold no pairs");
        if (shards.Resolution != config.ImageResolution || shards.ContextLength != options.ContextLength)
            throw new InvalidDataException($"{options.TrainShards}: shards of {shards.Resolution} px and context length {shards.ContextLength}, " +
                $"but {config.Name} takes {config.ImageResolution} px and the run context_length {options.ContextLength}");
        log.WriteLine($"training from {shards.Shards.Count} preprocessed shard(s) in {options.TrainShards}" +
            (options.UseAugment ? " (shards keep no original image size: the augmentation's crop aspect is drawn on the R x R image)" : ""));
        return shards;
    }

    InMemoryPairDataset LoadSplit(string dir, string split, ImageTransform transform, ClipTokenizer tokenizer)
    {
        string? lmdb = InMemoryPairDataset.LmdbSplitDirectory(dir, split);
        if (lmdb is not null) log.WriteLine($"reading the {split} split from the official LMDB in {lmdb}");
        Action<string> warn = e => log.WriteLine($"warning: {e} (skipped)");
        var data = lmdb is null
            ? InMemoryPairDataset.Load(dir, split, transform, tokenizer, options.ContextLength, warn)
            : InMemoryPairDataset.LoadLmdb(lmdb, transform, tokenizer, options.ContextLength, warn);
        if (data.Count == 0) throw new InvalidDataException($"{dir}: the {split} split has no usable text-image pairs");
        return data;
    }

    /// <summary>Text->image and image->text recall over the whole validation split.</summary>
    ValidationResult Validate(ClipModel model, InMemoryPairDataset valid, int epoch)
    {
        model.eval();
        var device = model.LogitScale.device;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var imageIds = valid.ImageIds;
        int batch = options.ValidBatchSize;
        var imageParts = new List<Tensor>();
        for (int start = 0; start < imageIds.Count; start += batch)
            imageParts.Add(ClipModel.Normalize(model.EncodeImage(valid.Images(start, Math.Min(batch, imageIds.Count - start)).to(device))));
        Tensor images = cat(imageParts, 0).cpu();

        var tokenizerTexts = valid.Texts;
        var textParts = new List<Tensor>();
        var ids = valid.TextTokens();
        for (int start = 0; start < tokenizerTexts.Count; start += batch)
            textParts.Add(ClipModel.Normalize(model.EncodeText(ids[start..Math.Min(start + batch, tokenizerTexts.Count)].to(device))));
        Tensor texts = cat(textParts, 0).cpu();

        var textRelevant = tokenizerTexts.Select(t => (IReadOnlyCollection<int>)t.ImageIds.Select(valid.ImagePosition).Where(p => p >= 0).ToHashSet()).ToList();
        var imageRelevant = Enumerable.Range(0, imageIds.Count).Select(_ => new HashSet<int>()).ToList();
        for (int t = 0; t < textRelevant.Count; t++)
            foreach (int p in textRelevant[t]) imageRelevant[p].Add(t);
        var t2i = RetrievalMetrics.Compute(texts, images, textRelevant);
        var i2t = RetrievalMetrics.Compute(images, texts, imageRelevant.Select(h => (IReadOnlyCollection<int>)h).ToList());
        return new ValidationResult(epoch, t2i, i2t);
    }
}
