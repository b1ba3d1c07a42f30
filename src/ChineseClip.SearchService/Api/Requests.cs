// The JSON bodies of the API (snake_case names, as the routes document them).
using System.Text.Json.Serialization;

namespace ChineseClip.SearchService.Api;

public sealed record SearchRequest(
    [property: JsonPropertyName("collection")] string? Collection,
    [property: JsonPropertyName("text")] string? Text,
    [property: JsonPropertyName("image")] string? Image,
    [property: JsonPropertyName("vector")] float[]? Vector,
    [property: JsonPropertyName("target")] string? Target,
    [property: JsonPropertyName("k")] int? K,
    [property: JsonPropertyName("exact")] bool? Exact);

public sealed record EmbedRequest(
    [property: JsonPropertyName("texts")] string[]? Texts,
    [property: JsonPropertyName("images")] string[]? Images,
    [property: JsonPropertyName("collection")] string? Collection);

public sealed record ClassifyRequest(
    [property: JsonPropertyName("image")] string? Image,
    [property: JsonPropertyName("labels")] string[]? Labels,
    [property: JsonPropertyName("templates")] string[]? Templates,
    [property: JsonPropertyName("collection")] string? Collection);

public sealed record NewItem(
    [property: JsonPropertyName("image")] string? Image,
    [property: JsonPropertyName("captions")] string[]? Captions,
    [property: JsonPropertyName("id")] long? Id);

public sealed record AddItemsRequest([property: JsonPropertyName("items")] NewItem[]? Items);

public sealed record DeployRequest(
    [property: JsonPropertyName("schedule_id")] string? ScheduleId,
    [property: JsonPropertyName("stage")] string? Stage);
