// Zero-shot classification: each class is the mean of its L2-normalised prompt embeddings, renormalised; an image
// goes to the class with the highest cosine similarity.
using ChineseClip.Model;
using ChineseClip.Model.Text;
using static TorchSharp.torch;

namespace ChineseClip.Training;

public static class ZeroShot
{
    /// <summary>The official zero-shot prompts; `{}` is replaced by the class name.</summary>
    public static IReadOnlyList<string> DefaultTemplates => PromptTemplates.Official;

    /// <summary>[classes, embed] normalised class vectors.</summary>
    public static Tensor ClassVectors(ClipModel model, ClipTokenizer tokenizer, IReadOnlyList<string> classes, IReadOnlyList<string> templates, int contextLength)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var vectors = new List<Tensor>();
        foreach (string name in classes)
        {
            var prompts = templates.Select(t => TextPreprocess.ForLoader(t.Replace("{}", name))).ToList();
            Tensor embeddings = ClipModel.Normalize(model.EncodeText(tensor(tokenizer.TokenizeBatch(prompts, contextLength))));
            vectors.Add(ClipModel.Normalize(embeddings.mean([0])));
        }
        return stack(vectors).MoveToOuterDisposeScope();
    }

    /// <summary>Top-1 and top-5 accuracy (x100) of normalised image features against class vectors.</summary>
    public static (double Top1, double Top5, int[] Predicted) Score(Tensor imageFeatures, Tensor classVectors, IReadOnlyList<int> truth)
    {
        using var scope = NewDisposeScope();
        int k = (int)Math.Min(5, classVectors.shape[0]);
        long[] top = imageFeatures.matmul(classVectors.t()).topk(k, dim: 1).indexes.contiguous().data<long>().ToArray();
        int hit1 = 0, hit5 = 0;
        var predicted = new int[truth.Count];
        for (int i = 0; i < truth.Count; i++)
        {
            predicted[i] = (int)top[i * k];
            if (top[i * k] == truth[i]) hit1++;
            for (int j = 0; j < k; j++) if (top[i * k + j] == truth[i]) { hit5++; break; }
        }
        return (100.0 * hit1 / truth.Count, 100.0 * hit5 / truth.Count, predicted);
    }
}
