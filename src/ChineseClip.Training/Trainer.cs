// The fine-tuning loop of the official recipe, laid out as open_clip lays out its trainer: Setup (data, model,
// optimizer, sampler, schedule), TrainOneEpoch (the steps of one epoch), evaluation (Validation), the log and
// metrics.jsonl (TrainLog) and the checkpoints (CheckpointRotation: epoch_latest.pt, epoch{N}.pt, best.pt in the
// official layout, with what an exact mid-epoch resume needs). Data-parallel: every rank runs this loop on its slice
// of each global batch with the same collectives; rank 0 alone validates and writes the run folder.
using System.Diagnostics;
using ChineseClip.Contracts;
using ChineseClip.Data.Datasets;
using ChineseClip.Data.Shards;
using ChineseClip.Model;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

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

    /// <summary>What Setup builds and every epoch of the run shares, with the run's position (step, best recall).</summary>
    sealed class Session : IDisposable
    {
        public required ClipConfig Config { get; init; }
        public required Device Device { get; init; }
        public required IPairBatches Train { get; init; }
        public required InMemoryPairDataset? Valid { get; init; }
        public required TrainAugment? Augment { get; init; }
        public required ClipModel Model { get; init; }
        public Bf16Compute? Bf16 { get; set; }
        public AdamW Optimizer { get; set; } = null!;
        public EpochSampler Sampler { get; set; } = null!;
        public int GlobalBatch { get; set; }
        public int StepsPerEpoch { get; set; }
        public int MaxEpochs { get; set; }
        public int TotalSteps { get; set; }
        public LrSchedule Schedule { get; set; } = null!;

        public int Step;
        public double Best;
        /// <summary>The last step's progress, which a validation report repeats.</summary>
        public TrainProgress? Last;
        public readonly Stopwatch RunWatch = new();
        public int FirstStep;

        public void Dispose()
        {
            Optimizer?.Dispose();
            Bf16?.Dispose();
            Model.Dispose();
        }
    }

    /// <summary>Runs the whole schedule; returns the validation results (empty without val_data).</summary>
    public IReadOnlyList<ValidationResult> Run(CancellationToken cancel = default)
    {
        using var run = Setup();
        var checkpoints = new CheckpointRotation(options, log, _group, Checkpoints, OnCheckpoint);
        int startEpoch;
        (startEpoch, run.Step, run.Best) = options.Resume is null ? (0, 0, double.NegativeInfinity) : checkpoints.Resume(run.Model, run.Optimizer, run.StepsPerEpoch);
        if (IsMaster) Directory.CreateDirectory(Checkpoints.Folder);
        // A resumed run continues its metrics; a fresh one (or one reset to epoch 0) starts them anew.
        bool continuing = options.Resume is not null && !options.ResetDataOffset;
        using var trainLog = new TrainLog(log, IsMaster ? Checkpoints.Metrics : null, append: continuing);
        if (continuing) trainLog.Resume(run.Step, startEpoch + 1, options.Resume, _group.WorldSize);
        log.WriteLine($"{run.Config.Name}: {run.Train.Count} training pairs, {run.StepsPerEpoch} steps per epoch, {run.TotalSteps} steps" +
            (_group.WorldSize > 1 ? $", rank {_group.Rank} of {_group.WorldSize}" : "") +
            (options.RanksPerWorker > 1 ? $", computing ranks {string.Join(", ", Enumerable.Range(0, options.RanksPerWorker).Select(m => _group.Rank + _group.WorldSize * m))} " +
                $"of a {_group.WorldSize * options.RanksPerWorker}-rank run" : "") +
            (run.Device.type == DeviceType.CPU ? $"; {ChineseClip.Model.Runtime.MklCpuPath.Status}" : "") + $"; logs in {RunDir}");

        var results = new List<ValidationResult>();
        run.RunWatch.Start();
        run.FirstStep = run.Step;
        for (int epoch = startEpoch; epoch < run.MaxEpochs; epoch++)
        {
            using var epochSpan = TrainingTelemetry.Source.StartActivity($"epoch {epoch + 1}");
            epochSpan?.SetTag("cnclip.epoch", epoch + 1);
            epochSpan?.SetTag("cnclip.rank", _group.Rank);
            epochSpan?.SetTag("cnclip.first_step", run.Step + 1);
            TrainOneEpoch(run, epoch, trainLog, checkpoints, cancel);

            epochSpan?.SetTag("cnclip.last_step", run.Step);
            ValidationResult? validation = null;
            if (run.Valid is not null && ((epoch + 1) % options.ValidEpochInterval == 0 || epoch + 1 == run.MaxEpochs))
            {
                validation = Evaluate(run, trainLog, epoch, atEpochEnd: true);
                results.Add(validation);
                epochSpan?.SetTag("cnclip.valid.mean_recall", validation.MeanRecall);
            }

            bool isBest = validation is not null && validation.MeanRecall > run.Best;
            if (isBest) run.Best = validation!.MeanRecall;
            checkpoints.EndOfEpoch(run.Model, run.Optimizer, epoch, run.Step, run.Best, isBest, run.MaxEpochs);
        }
        return results;
    }

    /// <summary>The data, the model (weights broadcast from rank 0), the optimizer, the sampler and the LR schedule.</summary>
    Session Setup()
    {
        ChineseClip.Model.Runtime.TorchCpu.SetThreads(options.Threads);
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
        var run = new Session { Config = config, Device = device, Train = train, Valid = valid, Augment = augment, Model = new ClipModel(config) };
        try
        {
            var model = run.Model;
            model.to(device);
            if (_group.WorldSize > 1)
            {
                GradientSync.BroadcastWeights(model, _group);
                torch.manual_seed(options.Seed + _group.Rank); // each rank its own dropout masks
            }
            if (options.FreezeVision)
                foreach (var p in model.Visual.parameters()) p.requires_grad = false;
            if (options.GradCheckpointing) model.SetGradCheckpointing(true);
            var bf16 = run.Bf16 = options.Precision == "bf16" ? new Bf16Compute(model) : null;
            if (options.GradCheckpointing) bf16?.Compute.SetGradCheckpointing(true);
            if (options.MaskRatio > 0)
            {
                model.SetMaskRatio(options.MaskRatio);
                bf16?.Compute.SetMaskRatio(options.MaskRatio);
            }
            var defaults = AdamWSettings.OfficialFor(config, options.Lr, options.Wd);
            var settings = defaults with { Beta1 = options.Beta1 ?? defaults.Beta1, Beta2 = options.Beta2 ?? defaults.Beta2, Eps = options.Eps ?? defaults.Eps };
            run.Optimizer = OptimizerFactory.CreateAdamW(model, settings);

            var sampler = run.Sampler = new EpochSampler(train.Count, options.BatchSize, _group.WorldSize, _group.Rank, options.Seed);
            run.GlobalBatch = options.BatchSize * options.AccumFreq * _group.WorldSize;
            int stepsPerEpoch = run.StepsPerEpoch = sampler.BatchesPerEpoch / options.AccumFreq;
            if (stepsPerEpoch == 0)
                throw new InvalidDataException($"{options.TrainData}: {sampler.BatchesPerEpoch} batch(es) per epoch is fewer than accum_freq {options.AccumFreq}");
            // As official: max_steps, when given, sets the step count and max_epochs (rounded up); training stops there.
            int maxEpochs = run.MaxEpochs = options.MaxSteps is int ms ? (int)Math.Ceiling((double)ms * options.AccumFreq / sampler.BatchesPerEpoch) : options.MaxEpochs;
            int totalSteps = run.TotalSteps = options.MaxSteps ?? stepsPerEpoch * maxEpochs;
            run.Schedule = new LrSchedule(options.Lr, options.Warmup, totalSteps);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>The optimiser steps of one epoch (from where the run stands in it), with their log lines, step
    /// checkpoints and in-epoch validations.</summary>
    void TrainOneEpoch(Session run, int epoch, TrainLog trainLog, CheckpointRotation checkpoints, CancellationToken cancel)
    {
        var (model, optimizer, sampler, train, device) = (run.Model, run.Optimizer, run.Sampler, run.Train, run.Device);
        int stepsPerEpoch = run.StepsPerEpoch, totalSteps = run.TotalSteps, globalBatch = run.GlobalBatch;
        double LrAt(int step) => options.SkipScheduler ? options.Lr : run.Schedule.At(step);
        model.train();
        if (options.FreezeVision) FreezeBatchNorm(model);
        var dataWatch = Stopwatch.StartNew();
        int batchIndex = run.Step - epoch * stepsPerEpoch; // optimiser steps done in this epoch
        // Batches beyond a multiple of accum_freq are dropped, as the official loop does.
        foreach (int[][] batches in sampler.Batches(epoch, skipBatches: batchIndex * options.AccumFreq, positions: true)
            .Take((stepsPerEpoch - batchIndex) * options.AccumFreq).Chunk(options.AccumFreq))
        {
            cancel.ThrowIfCancellationRequested();
            if (run.Step >= totalSteps) break; // max_steps reached inside the epoch
            double lr = LrAt(run.Step);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            StepResult result;
            double dataTime, batchTime;
            using (var scope = NewDisposeScope())
            {
                // With ranks_per_worker k (accum_freq 1), part m holds the batch's positions m, m + k, ...: those the
                // sampler of the k-times larger world gives its rank (this rank + world size x m).
                int k = options.RanksPerWorker;
                int[][] parts = k == 1 ? batches : [.. Enumerable.Range(0, k).Select(m => batches[0].Where((_, i) => i % k == m).ToArray())];
                var micro = parts.Select(positions => TrainBatch(train, positions, run.Augment, epoch))
                    .Select(b => device.type == DeviceType.CPU ? b : (b.Pixels.to(device), b.Ids.to(device))).ToList();
                dataTime = dataWatch.Elapsed.TotalSeconds;
                result = k == 1
                    ? TrainStep.RunAccumulated(model, optimizer, micro, _group, run.Bf16, aggregate: !options.SkipAggregate)
                    : TrainStep.RunAsRanks(model, optimizer, micro, _group, run.Bf16, aggregate: !options.SkipAggregate);
                batchTime = dataWatch.Elapsed.TotalSeconds;
            }
            int step = ++run.Step;
            batchIndex++;
            if (step % options.LogInterval == 0 || batchIndex == stepsPerEpoch)
            {
                int seen = batchIndex * globalBatch;
                trainLog.Step(step, totalSteps, epoch, seen, sampler.PaddedSize, result, lr, dataTime, batchTime, globalBatch);
                double eta = run.RunWatch.Elapsed.TotalSeconds / (step - run.FirstStep) * (totalSteps - step);
                run.Last = new TrainProgress(epoch + 1, run.MaxEpochs, step, totalSteps, result.Loss, lr, globalBatch / batchTime,
                    dataTime, batchTime - dataTime - result.AllReduceSeconds, result.AllReduceSeconds, eta);
                if (IsMaster) OnProgress?.Invoke(run.Last);
            }
            if (options.SaveStepFrequency > 0 && step % options.SaveStepFrequency == 0 && batchIndex < stepsPerEpoch)
                checkpoints.SaveStep(model, optimizer, epoch, step, run.Best);
            // The official valid_step_interval: validation inside the epoch too (logged and reported; best.pt is
            // chosen among the epoch-end validations, where every rank writes a checkpoint).
            if (run.Valid is not null && options.ValidStepInterval is int every && step % every == 0 && batchIndex < stepsPerEpoch)
            {
                Evaluate(run, trainLog, epoch, atEpochEnd: false);
                model.train();
                if (options.FreezeVision) FreezeBatchNorm(model);
            }
            dataWatch.Restart();
        }
    }

    /// <summary>Validates on rank 0, logs the recall and reports it with the last step's progress.</summary>
    ValidationResult Evaluate(Session run, TrainLog trainLog, int epoch, bool atEpochEnd)
    {
        var v = Validation.Evaluate(run.Model, run.Valid!, epoch + 1, options.ValidBatchSize);
        trainLog.Validation(v, epoch, run.Step, atEpochEnd);
        if (run.Last is not null) OnProgress?.Invoke(run.Last with { Validation = v });
        return v;
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
}
