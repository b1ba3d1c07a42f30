// What a training run reports as it goes: its validation results and, after each logged step, its progress.
namespace ChineseClip.Training;

public sealed record ValidationResult(int Epoch, Recall TextToImage, Recall ImageToText)
{
    public double MeanRecall => (TextToImage.Mean + ImageToText.Mean) / 2;
}

/// <summary>What a running stage reports (a worker forwards it to the coordinator): after each logged step, and
/// with <see cref="Validation"/> set after each validation.</summary>
public sealed record TrainProgress(int Epoch, int Epochs, long Step, long Steps, double Loss, double Lr, double SamplesPerSecond,
    double DataSeconds, double ComputeSeconds, double AllReduceSeconds, double EtaSeconds, ValidationResult? Validation = null);
