// A run's checkpoints (CheckpointLayout): saved in the official layout plus what an exact resume needs, rotated at
// each epoch end as the official trainer does (epoch_latest.pt every epoch, epoch{N}.pt every save_epoch_frequency
// epochs and after the last, best.pt at the best validation), and read back to resume. Saving is a collective (every
// rank's generator state goes in); rank 0 alone writes.
using ChineseClip.Contracts;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ChineseClip.Training;

sealed class CheckpointRotation(TrainOptions options, TextWriter log, ICollectives group, CheckpointLayout layout, Action<string, long>? onCheckpoint)
{
    bool IsMaster => group.Rank == 0;

    const string RngStateKey = "rng_state";
    const string RankRngStatesKey = "rank_rng_states";
    const string BestKey = "best_mean_recall";

    /// <summary>The official layout plus what an exact resume needs: AdamW moments (torch's state_dict layout), the
    /// CPU generator state (dropout), and the best mean recall so far. "epoch" counts completed epochs; the position
    /// inside the epoch follows from "step".</summary>
    public void Save(string path, ClipModel model, AdamW optimizer, int epoch, int step, double best)
    {
        // Every rank's generator state goes into the checkpoint (a collective: all ranks are here); rank 0 writes it.
        using Tensor rng = torch.get_rng_state();
        Tensor[] rngStates = group.AllGather(rng);
        if (!IsMaster) return;
        var checkpoint = new OfficialCheckpoint
        {
            StateDict = model.state_dict(), Epoch = epoch, Step = step, Name = options.Name,
            Optimizer = OptimizerState.ToOfficial(optimizer),
        };
        checkpoint.Extra[RngStateKey] = rng;
        if (group.WorldSize > 1) checkpoint.Extra[RankRngStatesKey] = stack(rngStates);
        if (!double.IsNegativeInfinity(best)) checkpoint.Extra[BestKey] = best;
        checkpoint.Save(path);
        onCheckpoint?.Invoke(path, step);
    }

    /// <summary>The checkpoint of save_step_frequency, inside epoch <paramref name="epoch"/> (from 0).</summary>
    public void SaveStep(ClipModel model, AdamW optimizer, int epoch, int step, double best) =>
        Save(layout.Step(epoch + 1, step), model, optimizer, epoch, step, best);

    /// <summary>The rotation at the end of epoch <paramref name="epoch"/> (from 0).</summary>
    public void EndOfEpoch(ClipModel model, AdamW optimizer, int epoch, int step, double best, bool isBest, int maxEpochs)
    {
        // epoch_latest.pt every epoch; epoch{N}.pt every save_epoch_frequency epochs and after the last (official).
        string latest = layout.Latest;
        Save(latest, model, optimizer, epoch + 1, step, best);
        if (!IsMaster) return;
        void CopyAtomically(string to)
        {
            File.Copy(latest, to + ".tmp", overwrite: true);
            File.Move(to + ".tmp", to, overwrite: true);
        }
        if ((epoch + 1) % options.SaveEpochFrequency == 0 || epoch + 1 == maxEpochs) CopyAtomically(layout.Epoch(epoch + 1));
        if (isBest) CopyAtomically(layout.Best);
    }

    /// <summary>Sets the CPU generator to this rank's state from a checkpoint's extras (each rank's when the checkpoint
    /// was written by as many ranks, else the single state of a one-rank run); false when there is none to use.</summary>
    internal static bool RestoreGenerator(IReadOnlyDictionary<string, object?> extra, int rank, int worldSize)
    {
        Tensor? state = extra.TryGetValue(RankRngStatesKey, out object? ranks) && ranks is Tensor states && states.shape[0] == worldSize
            ? states[rank]
            : extra.TryGetValue(RngStateKey, out object? rng) && rng is Tensor single && worldSize == 1 ? single.alias() : null;
        if (state is null) return false;
        // A copy of its own: the loaded states are views into the checkpoint's storage, and libtorch 2.10 through
        // TorchSharp crashes the process on a view at an offset (rank 1's row: SIGSEGV or "Invalid mt19937 state").
        using (state)
        using (var own = state.clone())
            torch.set_rng_state(own);
        return true;
    }

    public (int Epoch, int Step, double Best) Resume(ClipModel model, AdamW optimizer, int stepsPerEpoch)
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
        RestoreGenerator(checkpoint.Extra, group.Rank, group.WorldSize);
        double best = checkpoint.Extra.TryGetValue(BestKey, out object? b) && b is double d ? d : double.NegativeInfinity;
        log.WriteLine($"resuming from {path}: epoch {epoch + 1}, global step {step} ({offset} of {stepsPerEpoch} steps of the epoch done)");
        return (epoch, step, best);
    }
}
