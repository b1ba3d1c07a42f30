// AdamW state <-> the layout of torch's optimizer.state_dict(), so our checkpoints carry the optimizer the way the
// official ones do: {"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{..., "params": [index]}]},
// parameters numbered across groups in order.
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public static class OptimizerState
{
    public static Dictionary<string, object?> ToOfficial(AdamW optimizer)
    {
        var sd = optimizer.state_dict();
        var state = new Dictionary<object, object?>();
        var groups = new List<object?>();
        int index = 0;
        for (int g = 0; g < sd.Options.Count; g++)
        {
            var o = (AdamW.Options)sd.Options[g];
            var members = sd.StateIndexRef[g];
            var ids = new List<object?>();
            foreach (int i in members)
            {
                var s = (AdamW.State)sd.State[i];
                if (s.step > 0)
                    state[(long)index] = new Dictionary<object, object?>
                    {
                        ["step"] = tensor((float)s.step),
                        ["exp_avg"] = s.exp_avg,
                        ["exp_avg_sq"] = s.exp_avg_sq,
                    };
                ids.Add((long)index++);
            }
            groups.Add(new Dictionary<object, object?>
            {
                ["lr"] = o.LearningRate ?? 0.0, ["initial_lr"] = o.InitialLearningRate, ["betas"] = new object?[] { o.beta1 ?? 0.9, o.beta2 ?? 0.999 },
                ["eps"] = o.eps ?? 1e-8, ["weight_decay"] = o.weight_decay ?? 0.0, ["amsgrad"] = o.amsgrad ?? false,
                ["maximize"] = o.maximize ?? false, ["foreach"] = null, ["capturable"] = false, ["params"] = ids,
            });
        }
        return new Dictionary<string, object?> { ["state"] = state, ["param_groups"] = groups };
    }

    /// <summary>Restores moments and step counts saved by <see cref="ToOfficial"/> (or torch) into a fresh optimizer
    /// built with the same parameter groups.</summary>
    public static void LoadOfficial(AdamW optimizer, object saved, string source)
    {
        if (saved is not IDictionary<object, object?> top || !top.TryGetValue("state", out object? stateObject)
            || stateObject is not IDictionary<object, object?> state)
            throw new InvalidDataException($"{source}: optimizer entry is not a torch optimizer state_dict");
        var sd = optimizer.state_dict();
        int index = 0;
        using var _ = no_grad();
        for (int g = 0; g < sd.Options.Count; g++)
            foreach (int i in sd.StateIndexRef[g])
            {
                var s = (AdamW.State)sd.State[i];
                if (state.TryGetValue((long)index, out object? entryObject) && entryObject is IDictionary<object, object?> entry)
                {
                    var avg = (Tensor)entry["exp_avg"]!;
                    if (!avg.shape.SequenceEqual(s.exp_avg.shape))
                        throw new InvalidDataException($"{source}: optimizer state of parameter {index} has shape [{string.Join(",", avg.shape)}], the model [{string.Join(",", s.exp_avg.shape)}]");
                    s.exp_avg.copy_(avg);
                    s.exp_avg_sq.copy_((Tensor)entry["exp_avg_sq"]!);
                    s.step = entry["step"] switch { Tensor t => (long)t.to(ScalarType.Float64).item<double>(), var v => Convert.ToInt64(v) };
                }
                index++;
            }
        optimizer.load_state_dict(sd);
    }
}
