// Prompts for zero-shot classification: a class name becomes several sentences whose embeddings are averaged.
namespace ChineseClip.Model.Text;

public static class PromptTemplates
{
    /// <summary>The project's default Chinese prompts (`cnclip zero-shot`, the search service's /v1/classify); `{}` is
    /// replaced by the class name.</summary>
    public static readonly string[] Chinese =
    [
        "{}", "一张{}的照片。", "{}的图片。", "这是一张{}的图片。", "一张清晰的{}照片。", "一张模糊的{}照片。",
        "一张{}的特写。", "画面里有{}。",
    ];
}
