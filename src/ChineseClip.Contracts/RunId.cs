// The id of one attempt of one stage, "{scheduleId}/{stageIndex}/{attempt}": the coordinator gives it to the stage's
// workers, who name their reports, their rendezvous and their ring group with it. Formatted and read only here.
using System.Globalization;

namespace ChineseClip.Contracts;

public readonly record struct RunId(string ScheduleId, int StageIndex, int Attempt)
{
    /// <summary>"{scheduleId}/{stageIndex}": the same for every attempt of the stage.</summary>
    public string Stage => StageKey(ScheduleId, StageIndex);

    public static string StageKey(string scheduleId, int stageIndex) => string.Create(CultureInfo.InvariantCulture, $"{scheduleId}/{stageIndex}");

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{ScheduleId}/{StageIndex}/{Attempt}");

    public static bool TryParse(string? text, out RunId id)
    {
        id = default;
        var parts = text?.Split('/');
        if (parts is not [{ Length: > 0 } schedule, var index, var attempt]
            || !int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out int stageIndex)
            || !int.TryParse(attempt, NumberStyles.None, CultureInfo.InvariantCulture, out int attemptNumber)) return false;
        var parsed = new RunId(schedule, stageIndex, attemptNumber);
        if (parsed.ToString() != text) return false; // one spelling per run: "s/01/2" is not "s/1/2"
        id = parsed;
        return true;
    }

    /// <exception cref="FormatException">The text is not "{scheduleId}/{stageIndex}/{attempt}".</exception>
    public static RunId Parse(string text) =>
        TryParse(text, out var id) ? id : throw new FormatException($"'{text}' is not a run id (schedule/stage index/attempt)");
}
