// `cnclip train --config FILE`: the official training arguments (cn_clip/training/params.py), by their argparse
// names with underscores. Defaults are those of the official fine-tuning scripts (run_scripts/*_finetune_*.sh: batch
// 128, lr 5e-5, wd 0.001, warmup 100, 3 epochs) where params.py's generic ones differ.
using System.Text.Json;
using System.Text.Json.Nodes;
using ChineseClip.Contracts;

namespace ChineseClip.Training;

public sealed record TrainOptions
{
    /// <summary>Folder with train_imgs.tsv / train_texts.jsonl (official layout), or the official LMDB: a folder holding
    /// lmdb/train/{pairs,imgs}, or that lmdb/train folder itself.</summary>
    public required string TrainData { get; init; }
    /// <summary>Folder with valid_imgs.tsv / valid_texts.jsonl, or the official LMDB (lmdb/valid, or that folder
    /// itself); null skips validation.</summary>
    public string? ValData { get; init; }
    /// <summary>A folder of packed shards of the train split (built by the preprocessing queue); when set, training
    /// reads its batches there instead of decoding train_data's images.</summary>
    public string? TrainShards { get; init; }
    /// <summary>VISION@TEXT or a merged .json; the official vision_model + text_model are accepted too.</summary>
    public required string Arch { get; init; }
    public required string Vocab { get; init; }
    /// <summary>Initial checkpoint (official .pt or HF safetensors); null trains from random init.</summary>
    public string? Resume { get; init; }
    public string Logs { get; init; } = "logs";
    public string Name { get; init; } = "run";
    public int BatchSize { get; init; } = 128;
    public int ValidBatchSize { get; init; } = 128;
    public int ContextLength { get; init; } = 52;
    public double Lr { get; init; } = 5e-5;
    public double Wd { get; init; } = 0.001;
    public int Warmup { get; init; } = 100;
    public int MaxEpochs { get; init; } = 3;
    public double? Beta1 { get; init; }
    public double? Beta2 { get; init; }
    public double? Eps { get; init; }
    public long Seed { get; init; } = 123;
    public int LogInterval { get; init; } = 10;
    public int ValidEpochInterval { get; init; } = 1;
    /// <summary>Also validate every N global steps inside an epoch (official default: none).</summary>
    public int? ValidStepInterval { get; init; }
    /// <summary>Optimiser steps to train for, before max_epochs (which it then sets, rounded up, as official).</summary>
    public int? MaxSteps { get; init; }
    /// <summary>FLIP: the share of patch tokens each training image drops (ViT only; 0: off, as official).</summary>
    public double MaskRatio { get; init; }
    /// <summary>Each rank's loss over its own batch only, without the features of the other ranks (official flag).</summary>
    public bool SkipAggregate { get; init; }
    /// <summary>Keep lr constant: no warmup, no cosine decay.</summary>
    public bool SkipScheduler { get; init; }
    /// <summary>Write epoch{N}.pt every N epochs (and after the last); epoch_latest.pt is written every epoch.</summary>
    public int SaveEpochFrequency { get; init; } = 1;

    // Official arguments accepted so that official configs load, with no effect here: data loading runs in the trainer
    // (num_workers), in-batch accuracy is always logged (report_training_batch_acc), and there is no debug mode.
    public int NumWorkers { get; init; } = 4;
    public int ValidNumWorkers { get; init; } = 1;
    public bool ReportTrainingBatchAcc { get; init; }
    public bool Debug { get; init; }

    // Official arguments for features this port does not have: accepted at their defaults, refused otherwise (Validate).
    public bool UseBnSync { get; init; }
    public string? ClipWeightPath { get; init; }
    public string? BertWeightPath { get; init; }
    public bool Distillation { get; init; }
    public string? TeacherModelName { get; init; }
    public double KdLossWeight { get; init; } = 0.5;
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Start from the resume checkpoint's weights only: fresh AdamW moments (as the official fine-tune does).</summary>
    public bool ResetOptimizer { get; init; }
    /// <summary>Start at epoch 0, step 0 instead of where the resume checkpoint stopped.</summary>
    public bool ResetDataOffset { get; init; }
    /// <summary>Also save epoch{E}_step{S}.pt every N steps (0: off); these resume mid-epoch exactly.</summary>
    public int SaveStepFrequency { get; init; }
    /// <summary>Batches per optimiser step (the official feature cache); the step sees batch_size x accum_freq pairs.</summary>
    public int AccumFreq { get; init; } = 1;
    /// <summary>Not an official argument: this process computes that many ranks of a data-parallel run with that many
    /// times its world size, one after another (see TrainStep.RunAsRanks), so that its steps are that run's. The
    /// coordinator sets it when a stage goes on with fewer workers than it started on; batch_size is then the worker's
    /// whole share, and the k ranks share one random generator (dropout and FLIP masks differ from the larger run's).</summary>
    public int RanksPerWorker { get; init; } = 1;
    /// <summary>Train the text tower only: image tower weights and BatchNorm statistics stay as loaded.</summary>
    public bool FreezeVision { get; init; }
    /// <summary>Recompute transformer activations in the backward pass: less memory, about one more forward per step.</summary>
    public bool GradCheckpointing { get; init; }
    /// <summary>The official training augmentation (RandomResizedCrop 0.9-1, flip, AutoAugment "original") on train
    /// images; validation never augments.</summary>
    public bool UseAugment { get; init; }
    /// <summary>Where this rank computes: cpu, cuda (the current GPU) or cuda:N. Not an official argument (the official
    /// script takes the GPU from the local rank).</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>fp32 or bf16. The official choices amp and fp16 (default amp) are refused by name: this port does not
    /// run fp16 with loss scaling.</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>Let float32 matrix products and convolutions on CUDA use TF32 (torch.backends.*.allow_tf32).</summary>
    public bool Tf32 { get; init; }
    /// <summary>Which CUDA kernels scaled_dot_product_attention may use: auto (libtorch picks), flash (math off) or math
    /// (flash off). TorchSharp 0.107 exposes only these two switches, so the memory-efficient kernel stays allowed.</summary>
    public string SdpaBackend { get; init; } = "auto";

    /// <summary>The official precision choices (params.py) with the ones this port runs.</summary>
    public static readonly IReadOnlyList<string> SupportedPrecisions = ["fp32", "bf16"];
    public static readonly IReadOnlyList<string> SdpaBackends = ["auto", "flash", "math"];

    // The official names are the properties' names in snake_case (TrainArguments.All lists them, with their kinds).
    static readonly JsonSerializerOptions Binding = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Reads a JSON or YAML (.yaml/.yml) config; unknown keys, wrong types and missing required keys are errors naming the key.
    /// Relative paths are taken relative to the config file's folder.</summary>
    public static TrainOptions Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config file not found", path);
        JsonObject o;
        bool yaml = YamlJson.IsYamlPath(path);
        try
        {
            string text = File.ReadAllText(path);
            o = (yaml ? YamlJson.Parse(text, path) : JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false })) as JsonObject
                ?? throw new JsonException("not a mapping of keys to values");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid {(yaml ? "YAML" : "JSON")}: {e.Message}");
        }
        if (yaml) TypeYamlScalars(o, path);
        return FromJson(o, path, Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Binds a JSON object of official argument names (a stage assignment, or a loaded config file).
    /// <paramref name="source"/> names it in errors; relative paths are taken relative to <paramref name="baseDirectory"/>.</summary>
    public static TrainOptions FromJson(JsonObject o, string source, string baseDirectory)
    {
        string path = source, dir = baseDirectory;
        // The official script names the towers separately.
        if (o["vision_model"] is JsonNode v && o["text_model"] is JsonNode t && o["arch"] is null)
        {
            string Tower(JsonNode node, string key) => node is JsonValue value && value.TryGetValue(out string? name)
                ? name : throw new InvalidDataException($"{path}: key '{key}': expected a model name, got {node.ToJsonString()}");
            o["arch"] = $"{Tower(v, "vision_model")}@{Tower(t, "text_model")}";
            o.Remove("vision_model");
            o.Remove("text_model");
        }
        var normalized = new JsonObject();
        foreach (var (key, value) in o)
        {
            string k = key.Replace('-', '_');
            if (!TrainArguments.All.ContainsKey(k)) throw new InvalidDataException($"{path}: unknown key '{key}'");
            normalized[k] = value?.DeepClone();
        }
        TrainOptions options;
        try
        {
            options = normalized.Deserialize<TrainOptions>(Binding)!;
        }
        catch (JsonException e)
        {
            string key = TrainArguments.All.Keys.FirstOrDefault(k => e.Path == $"$.{k}" || e.Message.Contains($"'{k}'")) ?? "?";
            throw new InvalidDataException($"{path}: key '{key}': {e.Message.Split(". Path")[0]}");
        }
        string? Rel(string? p) => p is null || Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(dir, p));
        string RelArch(string a) => a.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? Rel(a)! : a;
        options = options with
        {
            TrainData = Rel(options.TrainData)!, ValData = Rel(options.ValData), TrainShards = Rel(options.TrainShards), Vocab = Rel(options.Vocab)!,
            Resume = Rel(options.Resume), Logs = Rel(options.Logs)!, Arch = RelArch(options.Arch),
        };
        options.Validate(path);
        return options;
    }

    /// <summary>cpu, cuda or cuda:N (N a non-negative integer) as a torch device.</summary>
    public static bool TryParseDevice(string text, out TorchSharp.torch.Device device)
    {
        device = TorchSharp.torch.CPU;
        if (text == "cpu") return true;
        if (text == "cuda")
        {
            device = new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA);
            return true;
        }
        if (!text.StartsWith("cuda:", StringComparison.Ordinal) || !int.TryParse(text.AsSpan(5), System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out int index)) return false;
        device = new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, index);
        return true;
    }

    // YAML scalars arrive as text: each training argument's text becomes a JSON value of its kind, as a schedule's
    // hyperparameters do, so both formats bind the same way. Other keys are left for FromJson to refuse by name.
    static void TypeYamlScalars(JsonObject o, string path)
    {
        foreach (var (key, value) in o.ToList())
        {
            string k = key.Replace('-', '_');
            if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.String || !TrainArguments.All.ContainsKey(k)) continue;
            if (!TrainArguments.TryToJson(k, v.GetValue<string>(), out string json, out string why)) throw new InvalidDataException($"{path}: key '{key}': {why}");
            o[key] = JsonNode.Parse(json);
        }
    }

    void Validate(string path)
    {
        void Check(bool ok, string key, string message)
        {
            if (!ok) throw new InvalidDataException($"{path}: key '{key}': {message}");
        }
        Check(BatchSize >= 1, "batch_size", "must be at least 1");
        Check(ValidBatchSize >= 1, "valid_batch_size", "must be at least 1");
        Check(ContextLength >= 3, "context_length", "must be at least 3");
        Check(Lr > 0, "lr", "must be positive");
        Check(Wd >= 0, "wd", "must not be negative");
        Check(Warmup >= 0, "warmup", "must not be negative");
        Check(MaxEpochs >= 1, "max_epochs", "must be at least 1");
        Check(Threads >= 1, "threads", "must be at least 1");
        Check(LogInterval >= 1, "log_interval", "must be at least 1");
        Check(AccumFreq >= 1, "accum_freq", "must be at least 1");
        Check(RanksPerWorker >= 1, "ranks_per_worker", "must be at least 1");
        Check(BatchSize % RanksPerWorker == 0, "ranks_per_worker", $"{RanksPerWorker} does not divide batch_size {BatchSize}");
        Check(RanksPerWorker == 1 || AccumFreq == 1, "ranks_per_worker", "more than one rank per worker runs with accum_freq 1 only");
        Check(SaveStepFrequency >= 0, "save_step_frequency", "must not be negative");
        Check(ValidEpochInterval >= 1, "valid_epoch_interval", "must be at least 1");
        Check(ValidStepInterval is null or >= 1, "valid_step_interval", "must be at least 1");
        Check(MaxSteps is null or >= 1, "max_steps", "must be at least 1");
        Check(SaveEpochFrequency >= 1, "save_epoch_frequency", "must be at least 1");
        Check(!UseBnSync, "use_bn_sync", "SyncBatchNorm is not supported here (BatchNorm statistics stay per rank)");
        Check(MaskRatio >= 0 && MaskRatio < 1, "mask_ratio", "must be in [0, 1)");
        Check(ClipWeightPath is null && BertWeightPath is null, ClipWeightPath is null ? "bert_weight_path" : "clip_weight_path",
            "initialising a tower from separate open-source weights is not supported here: convert a checkpoint and pass it as resume");
        Check(!Distillation && TeacherModelName is null, Distillation ? "distillation" : "teacher_model_name", "distillation is not supported here");
        Check(TryParseDevice(Device, out _), "device", $"'{Device}' is not cpu, cuda or cuda:N");
        Check(Precision is not ("amp" or "fp16"), "precision", $"'{Precision}' (an official choice) is not supported here: use fp32 or bf16");
        Check(SupportedPrecisions.Contains(Precision), "precision", $"'{Precision}' is not one of {string.Join(", ", SupportedPrecisions)}");
        Check(SdpaBackends.Contains(SdpaBackend), "sdpa_backend", $"'{SdpaBackend}' is not one of {string.Join(", ", SdpaBackends)}");
    }
}
