// A search answer as users see it: the item, its score and captions, whether it came from the CLI or the service.
using System.Text.Json.Serialization;

namespace ChineseClip.Search;

/// <param name="Id">The image id (target images) or the caption's text id (target texts).</param>
/// <param name="ImageId">The image shown for the result: the image itself, or the one the caption describes.</param>
public sealed record SearchResult(
    [property: JsonPropertyName("id")] long Id,
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("captions")] IReadOnlyList<string> Captions,
    [property: JsonPropertyName("image_id")] long ImageId);

public static class SearchResults
{
    public static SearchTarget ParseTarget(string? target) => target switch
    {
        null or "" or "images" => SearchTarget.Images,
        "texts" => SearchTarget.Texts,
        _ => throw new ArgumentException($"target '{target}': expected images or texts"),
    };

    public static List<SearchResult> Describe(CollectionVersion version, SearchTarget target, IEnumerable<SearchHit> hits) =>
        hits.Select(h =>
        {
            if (target == SearchTarget.Images)
                return new SearchResult(h.Id, h.Score, version.ImagesById.TryGetValue(h.Id, out var image) ? image.Captions : [], h.Id);
            var text = version.TextsById[h.Id];
            return new SearchResult(h.Id, h.Score, [text.Text], text.ImageId);
        }).ToList();
}
