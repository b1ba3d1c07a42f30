using ChineseClip.Contracts;

namespace ChineseClip.Training.Tests;

public class TrainArgumentsTests
{
    [Fact]
    public void The_coordinator_checks_exactly_the_arguments_train_options_bind()
    {
        Assert.Equal(TrainOptions.Known.Keys.Order(), TrainArguments.All.Keys.Order());
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
