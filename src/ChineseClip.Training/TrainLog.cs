// What a run writes as it trains: the official log line of each logged step and each validation, and the same numbers
// as JSON lines in RUN_DIR/metrics.jsonl (rank 0 only; a resumed run appends to its file, a fresh one starts it anew).
using System.Globalization;
using System.Text.Json;

namespace ChineseClip.Training;

sealed class TrainLog(TextWriter log, string? metricsPath, bool append) : IDisposable
{
    readonly StreamWriter _metrics = metricsPath is null ? StreamWriter.Null : new StreamWriter(metricsPath, append) { AutoFlush = true };

    public void Resume(int step, int epoch, string? from, int worldSize) =>
        _metrics.WriteLine(JsonSerializer.Serialize(new { type = "resume", step, epoch, from, world_size = worldSize }));

    public void Step(int step, int totalSteps, int epoch, int seen, int paddedSize, StepResult result, double lr, double dataTime, double batchTime,
        int globalBatch)
    {
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Global Steps: {step}/{totalSteps} | Train Epoch: {epoch + 1} [{seen}/{paddedSize} ({100.0 * seen / paddedSize:F0}%)] | " +
            $"Loss: {result.Loss:F6} | Image2Text Acc: {result.ImageToTextAccuracy * 100:F2} | Text2Image Acc: {result.TextToImageAccuracy * 100:F2} | " +
            $"Data Time: {dataTime:F3}s | Batch Time: {batchTime:F3}s (compute {batchTime - dataTime - result.AllReduceSeconds:F3}s, " +
            $"all-reduce {result.AllReduceSeconds:F3}s) | LR: {lr:F6} | logit_scale: {result.LogitScale:F3} | " +
            $"Global Batch Size: {globalBatch} | {globalBatch / batchTime:F1} samples/s"));
        _metrics.WriteLine(JsonSerializer.Serialize(new
        {
            type = "train", step, epoch = epoch + 1, loss = result.Loss, i2t_acc = result.ImageToTextAccuracy,
            t2i_acc = result.TextToImageAccuracy, lr, logit_scale = result.LogitScale, data_time = dataTime, batch_time = batchTime,
            compute_time = batchTime - dataTime - result.AllReduceSeconds, allreduce_time = result.AllReduceSeconds,
        }));
    }

    public void Validation(ValidationResult v, int epoch, int step, bool atEpochEnd)
    {
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Validation {(atEpochEnd ? $"epoch {epoch + 1}" : $"step {step} (epoch {epoch + 1})")}: " +
            $"text->image R@1/5/10 {v.TextToImage.R1:F2}/{v.TextToImage.R5:F2}/{v.TextToImage.R10:F2}, " +
            $"image->text R@1/5/10 {v.ImageToText.R1:F2}/{v.ImageToText.R5:F2}/{v.ImageToText.R10:F2}, mean recall {v.MeanRecall:F2}"));
        _metrics.WriteLine(JsonSerializer.Serialize(new
        {
            type = "valid", step, epoch = epoch + 1, epoch_end = atEpochEnd, t2i = v.TextToImage, i2t = v.ImageToText, mean_recall = v.MeanRecall,
        }));
    }

    public void Dispose() => _metrics.Dispose();
}
