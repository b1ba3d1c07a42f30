// The training arguments, by their official names (cn_clip/training/params.py), with their kinds: the one list of
// them. A schedule's hyperparameters are checked against it before any worker sees them, YAML configs are typed by it,
// and TrainOptions binds these names to its properties by snake_case (a test keeps names and kinds equal).
namespace ChineseClip.Contracts;

public enum ArgumentKind { Integer, Number, Boolean, Text }

public static class TrainArguments
{
    public static readonly IReadOnlyDictionary<string, ArgumentKind> All = new Dictionary<string, ArgumentKind>
    {
        ["train_data"] = ArgumentKind.Text, ["val_data"] = ArgumentKind.Text, ["train_shards"] = ArgumentKind.Text, ["arch"] = ArgumentKind.Text, ["vocab"] = ArgumentKind.Text,
        ["resume"] = ArgumentKind.Text, ["logs"] = ArgumentKind.Text, ["name"] = ArgumentKind.Text,
        ["batch_size"] = ArgumentKind.Integer, ["valid_batch_size"] = ArgumentKind.Integer, ["context_length"] = ArgumentKind.Integer,
        ["lr"] = ArgumentKind.Number, ["wd"] = ArgumentKind.Number, ["warmup"] = ArgumentKind.Integer, ["max_epochs"] = ArgumentKind.Integer,
        ["beta1"] = ArgumentKind.Number, ["beta2"] = ArgumentKind.Number, ["eps"] = ArgumentKind.Number, ["seed"] = ArgumentKind.Integer,
        ["log_interval"] = ArgumentKind.Integer, ["valid_epoch_interval"] = ArgumentKind.Integer, ["valid_step_interval"] = ArgumentKind.Integer, ["threads"] = ArgumentKind.Integer,
        ["reset_optimizer"] = ArgumentKind.Boolean, ["reset_data_offset"] = ArgumentKind.Boolean,
        ["save_step_frequency"] = ArgumentKind.Integer, ["accum_freq"] = ArgumentKind.Integer, ["freeze_vision"] = ArgumentKind.Boolean, ["grad_checkpointing"] = ArgumentKind.Boolean,
        ["use_augment"] = ArgumentKind.Boolean,
        ["max_steps"] = ArgumentKind.Integer, ["skip_scheduler"] = ArgumentKind.Boolean, ["save_epoch_frequency"] = ArgumentKind.Integer,
        ["num_workers"] = ArgumentKind.Integer, ["valid_num_workers"] = ArgumentKind.Integer, ["report_training_batch_acc"] = ArgumentKind.Boolean,
        ["debug"] = ArgumentKind.Boolean, ["use_bn_sync"] = ArgumentKind.Boolean, ["mask_ratio"] = ArgumentKind.Number,
        ["skip_aggregate"] = ArgumentKind.Boolean, ["clip_weight_path"] = ArgumentKind.Text, ["bert_weight_path"] = ArgumentKind.Text,
        ["distillation"] = ArgumentKind.Boolean, ["teacher_model_name"] = ArgumentKind.Text, ["kd_loss_weight"] = ArgumentKind.Number,
        ["device"] = ArgumentKind.Text, ["precision"] = ArgumentKind.Text, ["tf32"] = ArgumentKind.Boolean, ["sdpa_backend"] = ArgumentKind.Text,
        ["ranks_per_worker"] = ArgumentKind.Integer,
    };

    /// <summary>Arguments the coordinator sets from the stage itself (ranks_per_worker: from the workers it has); a
    /// schedule may not set them as hyperparameters.</summary>
    public static readonly IReadOnlySet<string> FromStage = new HashSet<string> { "train_data", "val_data", "train_shards", "arch", "vocab", "resume", "logs", "name", "ranks_per_worker" };

    /// <summary>Parses a hyperparameter given as text into a JSON literal of its kind, or says why it cannot.</summary>
    public static bool TryToJson(string name, string text, out string json, out string why)
    {
        json = why = "";
        if (!All.TryGetValue(name, out var kind))
        {
            why = "not a training argument";
            return false;
        }
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        switch (kind)
        {
            case ArgumentKind.Integer when long.TryParse(text.Trim(), System.Globalization.NumberStyles.Integer, invariant, out long i):
                json = i.ToString(invariant);
                return true;
            case ArgumentKind.Number when double.TryParse(text.Trim(), System.Globalization.NumberStyles.Float, invariant, out double d) && double.IsFinite(d):
                json = d.ToString("R", invariant);
                return true;
            case ArgumentKind.Boolean when bool.TryParse(text.Trim(), out bool b):
                json = b ? "true" : "false";
                return true;
            case ArgumentKind.Text:
                json = System.Text.Json.JsonSerializer.Serialize(text);
                return true;
            default:
                why = $"'{text}' is not {(kind == ArgumentKind.Integer ? "an integer" : kind == ArgumentKind.Number ? "a number" : "true or false")}";
                return false;
        }
    }
}
