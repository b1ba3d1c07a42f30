// Validation during training: text->image and image->text recall of the model over the whole validation split, as
// the official trainer's evaluate() computes it.
using ChineseClip.Data.Datasets;
using ChineseClip.Model;
using static TorchSharp.torch;

namespace ChineseClip.Training;

static class Validation
{
    /// <summary>Text->image and image->text recall over the whole validation split.</summary>
    public static ValidationResult Evaluate(ClipModel model, InMemoryPairDataset valid, int epoch, int batch)
    {
        model.eval();
        var device = model.LogitScale.device;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var imageIds = valid.ImageIds;
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
