using System.Reflection;
using System.Text.Json;
using ChineseClip.Contracts;

namespace ChineseClip.Training.Tests;

public class TrainArgumentsTests
{
    static ArgumentKind KindOf(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(int) || t == typeof(long) => ArgumentKind.Integer,
        var t when t == typeof(double) => ArgumentKind.Number,
        var t when t == typeof(bool) => ArgumentKind.Boolean,
        var t when t == typeof(string) => ArgumentKind.Text,
        var t => throw new InvalidOperationException($"no argument kind for {t}"),
    };

    [Fact]
    public void Train_options_bind_exactly_the_arguments_the_coordinator_checks_with_the_same_kinds()
    {
        var bound = typeof(TrainOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite)
            .ToDictionary(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name), p => KindOf(p.PropertyType));
        Assert.Equal(TrainArguments.All.OrderBy(kv => kv.Key), bound.OrderBy(kv => kv.Key));
    }

    [Fact]
    public void Arguments_set_from_the_stage_are_training_arguments()
    {
        Assert.All(TrainArguments.FromStage, name => Assert.True(TrainArguments.All.ContainsKey(name), name));
    }

    [Theory]
    [InlineData("lr", "5e-5", true, "5E-05")]
    [InlineData("batch_size", "32", true, "32")]
    [InlineData("batch_size", "3.5", false, "'3.5' is not an integer")]
    [InlineData("freeze_vision", "True", true, "true")]
    [InlineData("dropout", "0.1", false, "not a training argument")]
    public void Hyperparameters_given_as_text_become_json_of_their_kind_or_say_why_not(string name, string text, bool ok, string expected)
    {
        Assert.Equal(ok, TrainArguments.TryToJson(name, text, out string json, out string why));
        Assert.Equal(expected, ok ? json : why);
    }
}
