using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ChineseClip.Training.Tests;

public class TrainerTests
{
    static readonly (string Name, Rgb24 Colour)[] Colours =
    [
        ("红色", new Rgb24(220, 20, 20)), ("绿色", new Rgb24(20, 200, 20)), ("蓝色", new Rgb24(20, 20, 220)),
        ("黄色", new Rgb24(230, 220, 20)), ("紫色", new Rgb24(150, 20, 180)), ("黑色", new Rgb24(10, 10, 10)),
    ];

    /// <summary>Solid-colour squares on white, captioned by their colour: learnable in a few steps.</summary>
    static void WriteSplit(string dir, string split, int perColour, int idBase)
    {
        var images = new List<string>();
        var texts = new List<string>();
        int n = 0;
        foreach (var (name, colour) in Colours)
            for (int k = 0; k < perColour; k++, n++)
            {
                using var image = new Image<Rgb24>(40 + k * 3, 40, new Rgb24(255, 255, 255));
                for (int y = 8; y < 32; y++) for (int x = 8 + k; x < 30 + k; x++) image[x, y] = colour;
                using var stream = new MemoryStream();
                image.SaveAsPng(stream);
                long id = idBase + n;
                images.Add($"{id}\t{Base64.Encode(stream.ToArray())}");
                texts.Add(JsonSerializer.Serialize(new { text_id = idBase + 500 + n, text = $"一个{name}的方块", image_ids = new[] { id } }));
            }
        File.WriteAllLines(Path.Combine(dir, $"{split}_imgs.tsv"), images);
        File.WriteAllLines(Path.Combine(dir, $"{split}_texts.jsonl"), texts);
    }

    [Fact]
    public void Training_writes_official_checkpoints_metrics_and_validation_recall()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-train").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        string config = Path.Combine(root, "train.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new
        {
            train_data = ".", val_data = ".", arch = SharedFiles.Path("fixtures", "official-tiny", "arch.json"),
            vocab = SharedFiles.Path("reference", "vocab.txt"), logs = "logs", name = "t", batch_size = 8, valid_batch_size = 8,
            lr = 1e-3, warmup = 2, max_epochs = 2, log_interval = 1, threads = 1,
        }));
        var log = new StringWriter();
        var results = new Trainer(TrainOptions.Load(config), log).Run();

        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.InRange(r.TextToImage.R10, 0, 100));
        string checkpoints = Path.Combine(root, "logs", "t", "checkpoints");
        foreach (string file in new[] { "epoch1.pt", "epoch2.pt", "epoch_latest.pt", "best.pt" })
            Assert.True(File.Exists(Path.Combine(checkpoints, file)), file);
        var latest = OfficialCheckpoint.Load(Path.Combine(checkpoints, "epoch_latest.pt"));
        Assert.Equal((2, 6L), (latest.Epoch!.Value, latest.Step!.Value)); // 24 pairs / batch 8 = 3 steps per epoch
        using var reloaded = ClipModel.Load(Architectures.Resolve(SharedFiles.Path("fixtures", "official-tiny", "arch.json")), Path.Combine(checkpoints, "epoch2.pt"));

        var metrics = Metrics(Path.Combine(root, "logs", "t"));
        Assert.Equal(6, metrics.Count(m => m.GetProperty("type").GetString() == "train"));
        Assert.Equal(2, metrics.Count(m => m.GetProperty("type").GetString() == "valid"));
        Assert.Contains("Global Steps: 6/6 | Train Epoch: 2 [24/24 (100%)] | Loss: ", log.ToString());
        var firstTrain = metrics.First(m => m.GetProperty("type").GetString() == "train");
        Assert.True(firstTrain.GetProperty("compute_time").GetDouble() > 0);
        Assert.Equal(0, firstTrain.GetProperty("allreduce_time").GetDouble()); // one process: nothing to reduce
        Assert.Contains("all-reduce 0.000s)", log.ToString());
        // The LR follows warmup then cosine: step 1 is lr*(0+1)/2, the last step is past the peak.
        var lrs = metrics.Where(m => m.GetProperty("type").GetString() == "train").Select(m => m.GetProperty("lr").GetDouble()).ToList();
        Assert.Equal(5e-4, lrs[0], 12);
        Assert.Equal(1e-3, lrs[1], 12);
        Assert.True(lrs[5] < lrs[2]);
        Directory.Delete(root, true);
    }

    /// <summary>A run's metrics.jsonl lines, all or those of one type (train, valid, resume).</summary>
    static List<JsonElement> Metrics(string runDir, string? type = null) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(m => type is null || m.GetProperty("type").GetString() == type).ToList();

    static string WriteConfig(string root, string name, object extra)
    {
        var settings = new Dictionary<string, object?>
        {
            ["train_data"] = ".", ["val_data"] = ".", ["arch"] = SharedFiles.Path("fixtures", "official-tiny", "arch.json"),
            ["vocab"] = SharedFiles.Path("reference", "vocab.txt"), ["logs"] = "logs", ["name"] = name, ["batch_size"] = 8,
            ["lr"] = 1e-3, ["warmup"] = 2, ["max_epochs"] = 2, ["threads"] = 1,
        };
        foreach (var p in extra.GetType().GetProperties()) settings[p.Name] = p.GetValue(extra);
        string path = Path.Combine(root, name + ".json");
        File.WriteAllText(path, JsonSerializer.Serialize(settings));
        return path;
    }

    [Fact]
    public void Valid_step_interval_validates_inside_epochs_without_changing_the_training()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-validstep").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        var log = new StringWriter();
        var results = new Trainer(TrainOptions.Load(WriteConfig(root, "mid", new { valid_step_interval = 2 })), log).Run();
        new Trainer(TrainOptions.Load(WriteConfig(root, "plain", new { })), TextWriter.Null).Run();

        // 3 steps per epoch, 6 in all: inside-epoch validations after steps 2 and 4; step 6 ends epoch 2 (validated there).
        var valid = Metrics(Path.Combine(root, "logs", "mid"), "valid").Select(m => (m.GetProperty("step").GetInt32(), m.GetProperty("epoch_end").GetBoolean()));
        Assert.Equal([(2, false), (3, true), (4, false), (6, true)], valid);
        Assert.Contains("Validation step 2 (epoch 1): text->image R@1/5/10 ", log.ToString());
        Assert.Equal(2, results.Count); // the epoch-end ones
        // Validation switches the model to eval mode; training must go on in train mode (the fixture has dropout).
        AssertSameWeights(Path.Combine(root, "logs", "plain", "checkpoints", "epoch2.pt"), Path.Combine(root, "logs", "mid", "checkpoints", "epoch2.pt"));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Max_steps_skip_scheduler_and_save_epoch_frequency_behave_as_official()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-officialargs").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        // 3 steps per epoch: max_steps 4 means 2 epochs (rounded up), stopping one step into the second.
        new Trainer(TrainOptions.Load(WriteConfig(root, "steps", new { max_steps = 4, max_epochs = 9, skip_scheduler = true, num_workers = 8, log_interval = 1 })), TextWriter.Null).Run();
        string steps = Path.Combine(root, "logs", "steps");
        var train = Metrics(steps, "train");
        Assert.Equal([1, 2, 3, 4], train.Select(m => m.GetProperty("step").GetInt32()));
        Assert.All(train, m => Assert.Equal(1e-3, m.GetProperty("lr").GetDouble())); // no warmup, no decay
        var last = OfficialCheckpoint.Load(Path.Combine(steps, "checkpoints", "epoch_latest.pt"));
        Assert.Equal((2, 4L), (last.Epoch!.Value, last.Step!.Value));
        Assert.True(File.Exists(Path.Combine(steps, "checkpoints", "epoch2.pt")));
        Assert.False(File.Exists(Path.Combine(steps, "checkpoints", "epoch3.pt")));

        new Trainer(TrainOptions.Load(WriteConfig(root, "every2", new { max_epochs = 3, save_epoch_frequency = 2 })), TextWriter.Null).Run();
        var files = Directory.GetFiles(Path.Combine(root, "logs", "every2", "checkpoints")).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["best.pt", "epoch2.pt", "epoch3.pt", "epoch_latest.pt"], files);
        Directory.Delete(root, true);
    }

    [Theory]
    [InlineData("mask_ratio", "1.0", "must be in [0, 1)")]
    [InlineData("use_bn_sync", "true", "SyncBatchNorm is not supported here")]
    [InlineData("distillation", "true", "distillation is not supported here")]
    [InlineData("clip_weight_path", "\"w.pt\"", "initialising a tower from separate open-source weights")]
    public void Official_arguments_for_features_this_port_lacks_are_refused_by_name(string key, string value, string message)
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-config").FullName;
        string config = Path.Combine(dir, "c.json");
        File.WriteAllText(config, $$"""{"train_data": ".", "arch": "x", "vocab": "v", "{{key}}": {{value}}}""");
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(config));
        Assert.StartsWith($"{config}: key '{key}': {message}", e.Message);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Resuming_from_a_mid_epoch_checkpoint_reproduces_the_uninterrupted_weights()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-resume").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        new Trainer(TrainOptions.Load(WriteConfig(root, "full", new { save_step_frequency = 2 })), TextWriter.Null).Run();
        string full = Path.Combine(root, "logs", "full", "checkpoints");
        // Steps per epoch: 24 pairs / 8 = 3, so step 4 is one batch into epoch 2.
        Assert.True(File.Exists(Path.Combine(full, "epoch2_step4.pt")));

        var log = new StringWriter();
        new Trainer(TrainOptions.Load(WriteConfig(root, "resumed", new { resume = Path.Combine(full, "epoch2_step4.pt") })), log).Run();
        Assert.Contains("epoch 2, global step 4 (1 of 3 steps of the epoch done)", log.ToString());

        var expected = OfficialCheckpoint.Load(Path.Combine(full, "epoch2.pt"));
        var actual = OfficialCheckpoint.Load(Path.Combine(root, "logs", "resumed", "checkpoints", "epoch2.pt"));
        Assert.Equal(expected.Step, actual.Step);
        foreach (var (key, value) in expected.StateDict)
            Assert.True(value.allclose(actual.StateDict[key], rtol: 0, atol: 1e-7), $"{key} differs after resume");

        // Without the optimizer state the run differs: the comparison above can fail.
        new Trainer(TrainOptions.Load(WriteConfig(root, "reset", new { resume = Path.Combine(full, "epoch2_step4.pt"), reset_optimizer = true })), TextWriter.Null).Run();
        var reset = OfficialCheckpoint.Load(Path.Combine(root, "logs", "reset", "checkpoints", "epoch2.pt"));
        Assert.Contains(expected.StateDict, kv => !kv.Value.allclose(reset.StateDict[kv.Key], rtol: 0, atol: 1e-7));
        Directory.Delete(root, true);
    }

    static void AssertSameWeights(string expectedPath, string actualPath, bool same = true)
    {
        var expected = OfficialCheckpoint.Load(expectedPath).StateDict;
        var actual = OfficialCheckpoint.Load(actualPath).StateDict;
        if (same)
            foreach (var (key, value) in expected)
                Assert.True(value.equal(actual[key]).all().item<bool>(), $"{key} differs between {expectedPath} and {actualPath}");
        else
            Assert.Contains(expected, kv => !kv.Value.equal(actual[kv.Key]).all().item<bool>());
    }

    [Fact]
    public void One_trainer_computing_two_ranks_takes_the_steps_of_two_trainers_bit_for_bit()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-ranks").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        // Without dropout, the only randomness a rank draws from its own generator.
        var arch = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(SharedFiles.Path("fixtures", "official-tiny", "arch.json")))!.AsObject();
        arch["text_hidden_dropout_prob"] = 0.0;
        arch["text_attention_probs_dropout_prob"] = 0.0;
        File.WriteAllText(Path.Combine(root, "arch.json"), arch.ToJsonString());
        // Every run starts from one checkpoint: trainers on threads of one process share torch's global generator,
        // so their random initialisations would differ from a process's own.
        new Trainer(TrainOptions.Load(WriteConfig(root, "start", new { arch = "arch.json", max_epochs = 1 })), TextWriter.Null).Run();
        string start = Path.Combine(root, "logs", "start", "checkpoints", "epoch1.pt");
        object Settings(int batch, int ranksPerWorker = 1) => new
        {
            arch = "arch.json", batch_size = batch, use_augment = true, log_interval = 1, ranks_per_worker = ranksPerWorker,
            resume = start, reset_optimizer = true, reset_data_offset = true,
        };

        var group = new ChineseClip.Distributed.ThreadGroup(2);
        var twoRanks = TrainOptions.Load(WriteConfig(root, "two", Settings(4)));
        var threads = Enumerable.Range(0, 2).Select(r => new Thread(() =>
        {
            using var member = group.Member(r);
            new Trainer(twoRanks, TextWriter.Null, member).Run();
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var log = new StringWriter();
        new Trainer(TrainOptions.Load(WriteConfig(root, "one", Settings(8, ranksPerWorker: 2))), log).Run();
        Assert.Contains("computing ranks 0, 1 of a 2-rank run", log.ToString());
        new Trainer(TrainOptions.Load(WriteConfig(root, "plain", Settings(8))), TextWriter.Null).Run();

        string Checkpoint(string name) => Path.Combine(root, "logs", name, "checkpoints", "epoch2.pt");
        float[] Losses(string name) => File.ReadLines(Path.Combine(root, "logs", name, ChineseClip.Contracts.CheckpointLayout.MetricsFileName))
            .Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.GetProperty("type").GetString() == "train")
            .Select(e => e.GetProperty("loss").GetSingle()).ToArray();
        Assert.Equal(6, Losses("two").Length);
        Assert.Equal(Losses("two"), Losses("one"));
        AssertSameWeights(Checkpoint("two"), Checkpoint("one"));
        // One process on the whole batch at once rounds differently: the comparison above can fail.
        AssertSameWeights(Checkpoint("two"), Checkpoint("plain"), same: false);
        Directory.Delete(root, true);
    }

    [Fact]
    public void Augmented_training_is_reproducible_and_resumes_mid_epoch_exactly()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-augment").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        string Epoch2(string name) => Path.Combine(root, "logs", name, "checkpoints", "epoch2.pt");
        new Trainer(TrainOptions.Load(WriteConfig(root, "full", new { use_augment = true, save_step_frequency = 2 })), TextWriter.Null).Run();
        new Trainer(TrainOptions.Load(WriteConfig(root, "again", new { use_augment = true })), TextWriter.Null).Run();
        AssertSameWeights(Epoch2("full"), Epoch2("again"));

        string middle = Path.Combine(root, "logs", "full", "checkpoints", "epoch2_step4.pt");
        new Trainer(TrainOptions.Load(WriteConfig(root, "resumed", new { use_augment = true, resume = middle })), TextWriter.Null).Run();
        AssertSameWeights(Epoch2("full"), Epoch2("resumed"));

        // The augmentation is really applied: without it the same run ends elsewhere.
        new Trainer(TrainOptions.Load(WriteConfig(root, "plain", new { })), TextWriter.Null).Run();
        AssertSameWeights(Epoch2("full"), Epoch2("plain"), same: false);
        Directory.Delete(root, true);
    }

    [Fact]
    public void Training_from_the_official_lmdb_reaches_the_weights_of_training_from_tsv()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-lmdb-train").FullName;
        ChineseClip.Data.Demo.DemoDataGenerator.Generate(root, seed: 11, scale: 0.1);
        string data = Path.Combine(root, ChineseClip.Data.Demo.DemoDataGenerator.Datasets[0]);
        // What `cnclip build-lmdb --data-dir DATA --splits train,valid --lmdb-dir LMDB/lmdb` runs.
        string lmdbRoot = Path.Combine(root, "lmdb-copy");
        OfficialLmdb.Build(data, Path.Combine(lmdbRoot, "lmdb"), ["train", "valid"], e => Assert.Fail(e));
        Dictionary<string, object?> Settings(string name, string train, string valid) => new()
        {
            ["train_data"] = train, ["val_data"] = valid, ["arch"] = Path.Combine(root, "tiny-arch.json"), ["vocab"] = Path.Combine(root, "vocab.txt"),
            ["logs"] = Path.Combine(root, "logs"), ["name"] = name, ["batch_size"] = 16, ["valid_batch_size"] = 16, ["context_length"] = 24,
            ["lr"] = 1e-3, ["warmup"] = 2, ["max_epochs"] = 1, ["threads"] = 1, ["use_augment"] = true,
        };
        IReadOnlyList<ValidationResult> Train(string name, string train, string valid, StringWriter log)
        {
            string config = Path.Combine(root, name + ".json");
            File.WriteAllText(config, JsonSerializer.Serialize(Settings(name, train, valid)));
            return new Trainer(TrainOptions.Load(config), log).Run();
        }
        var tsvLog = new StringWriter();
        var fromTsv = Train("tsv", data, data, tsvLog);
        // train_data names the lmdb/train folder itself (as the official scripts do), val_data the folder above lmdb/.
        var lmdbLog = new StringWriter();
        var fromLmdb = Train("lmdb", Path.Combine(lmdbRoot, "lmdb", "train"), lmdbRoot, lmdbLog);

        Assert.Contains("reading the train split from the official LMDB", lmdbLog.ToString());
        Assert.Contains("reading the valid split from the official LMDB", lmdbLog.ToString());
        Assert.DoesNotContain("official LMDB", tsvLog.ToString());
        // Pair i of the LMDB is pair i of the tsv/jsonl (same builder order), so the sampler picks the same samples.
        AssertSameWeights(Path.Combine(root, "logs", "tsv", "checkpoints", "epoch1.pt"), Path.Combine(root, "logs", "lmdb", "checkpoints", "epoch1.pt"));
        Assert.Equal(fromTsv.Select(r => (r.TextToImage, r.ImageToText)), fromLmdb.Select(r => (r.TextToImage, r.ImageToText)));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Freeze_vision_keeps_the_image_tower_and_accum_freq_groups_batches_into_steps()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-freeze").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        new Trainer(TrainOptions.Load(WriteConfig(root, "start", new { max_epochs = 1 })), TextWriter.Null).Run();
        string start = Path.Combine(root, "logs", "start", "checkpoints", "epoch1.pt");
        var log = new StringWriter();
        new Trainer(TrainOptions.Load(WriteConfig(root, "frozen", new
        {
            resume = start, reset_optimizer = true, reset_data_offset = true, freeze_vision = true, batch_size = 4, accum_freq = 2, log_interval = 1,
        })), log).Run();
        // 24 pairs / batch 4 = 6 batches per epoch -> 3 steps of 2 batches; 2 epochs.
        Assert.Contains("Global Steps: 6/6 | Train Epoch: 2 [24/24 (100%)]", log.ToString());
        Assert.Contains("Global Batch Size: 8", log.ToString());
        var before = OfficialCheckpoint.Load(start).StateDict;
        var after = OfficialCheckpoint.Load(Path.Combine(root, "logs", "frozen", "checkpoints", "epoch2.pt")).StateDict;
        foreach (var (key, value) in before.Where(kv => kv.Key.StartsWith("visual.")))
            Assert.True(value.equal(after[key]).all().item<bool>(), $"{key} changed although the image tower is frozen");
        Assert.False(before["text_projection"].equal(after["text_projection"]).all().item<bool>());
        Directory.Delete(root, true);
    }

    [Fact]
    public void Each_epoch_is_a_span_under_the_span_current_when_training_starts()
    {
        string root = Directory.CreateTempSubdirectory("cnclip-epochspans").FullName;
        WriteSplit(root, "train", perColour: 4, idBase: 1000);
        WriteSplit(root, "valid", perColour: 1, idBase: 2000);
        var ended = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == TrainingTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (ended) ended.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);
        using (var caller = new Activity("train stage").Start())
        {
            new Trainer(TrainOptions.Load(WriteConfig(root, "spans", new { })), TextWriter.Null).Run();
            // 24 pairs, batch 8: 3 steps per epoch, 2 epochs, validation after each.
            var epochs = ended.Where(a => a.TraceId == caller.TraceId).ToList();
            Assert.Equal(["epoch 1", "epoch 2"], epochs.Select(a => a.DisplayName));
            Assert.All(epochs, a => Assert.Equal(caller.SpanId, a.ParentSpanId));
            Assert.Equal([("1", "1", "3"), ("2", "4", "6")],
                epochs.Select(a => ($"{a.GetTagItem("cnclip.epoch")}", $"{a.GetTagItem("cnclip.first_step")}", $"{a.GetTagItem("cnclip.last_step")}")));
            Assert.All(epochs, a => Assert.IsType<double>(a.GetTagItem("cnclip.valid.mean_recall")));
            Assert.Same(caller, Activity.Current); // the epoch spans ended and left the caller's span current
        }
        Directory.Delete(root, true);
    }

    [Fact]
    public void A_config_with_an_unknown_key_or_a_bad_value_names_the_key()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-config").FullName;
        string config = Path.Combine(dir, "c.json");
        File.WriteAllText(config, """{"train_data": ".", "arch": "x", "vocab": "v", "learning_rate": 1}""");
        Assert.Equal($"{config}: unknown key 'learning_rate'", Assert.Throws<InvalidDataException>(() => TrainOptions.Load(config)).Message);
        File.WriteAllText(config, """{"train_data": ".", "arch": "x", "vocab": "v", "batch_size": 0}""");
        Assert.Equal($"{config}: key 'batch_size': must be at least 1", Assert.Throws<InvalidDataException>(() => TrainOptions.Load(config)).Message);
        File.WriteAllText(config, """{"train_data": ".", "vision_model": "ViT-B-16", "text_model": "RoBERTa-wwm-ext-base-chinese", "vocab": "v", "batch-size": 4}""");
        var options = TrainOptions.Load(config);
        Assert.Equal(("ViT-B-16@RoBERTa-wwm-ext-base-chinese", 4, 5e-5, 100), (options.Arch, options.BatchSize, options.Lr, options.Warmup));
        string yaml = Path.Combine(dir, "c.yaml");
        File.WriteAllText(yaml, "train_data: data/train\narch: RN50@RBT3-chinese\nvocab: v.txt\nbatch_size: 16\nlr: 1.0e-4\nreset_optimizer: true\n");
        var fromYaml = TrainOptions.Load(yaml);
        Assert.Equal((16, 1e-4, true, Path.Combine(dir, "data", "train")), (fromYaml.BatchSize, fromYaml.Lr, fromYaml.ResetOptimizer, fromYaml.TrainData));
        File.WriteAllText(yaml, "batch_size: [unclosed\n");
        Assert.StartsWith($"{yaml}:2: invalid YAML", Assert.Throws<InvalidDataException>(() => TrainOptions.Load(yaml)).Message);
        File.WriteAllText(yaml, "train_data: data/train\narch: RN50@RBT3-chinese\nvocab: v.txt\nbatch_size: many\n");
        Assert.Equal($"{yaml}: key 'batch_size': 'many' is not an integer", Assert.Throws<InvalidDataException>(() => TrainOptions.Load(yaml)).Message);
        File.WriteAllText(config, """{"train_data": ".", "arch": "x", "vocab": "v", "freeze_vision": "yes"}""");
        Assert.StartsWith($"{config}: key 'freeze_vision': ", Assert.Throws<InvalidDataException>(() => TrainOptions.Load(config)).Message);
        Directory.Delete(dir, true);
    }
}
