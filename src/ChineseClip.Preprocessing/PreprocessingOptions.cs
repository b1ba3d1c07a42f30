using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ChineseClip.Preprocessing;

/// <summary>Queue and consumer settings, bound from the "Preprocessing" configuration section.</summary>
public sealed class PreprocessingOptions
{
    public const string Section = "Preprocessing";

    /// <summary>Prefix of every Redis key of the queue (several queues can share a server).</summary>
    public string Queue { get; set; } = "cnclip:preprocess";

    /// <summary>How long a delivery is leased; a running consumer renews it every third of this.</summary>
    public double LeaseSeconds { get; set; } = 30;

    /// <summary>Deliveries a task may fail (errors and expired leases alike) before it is dead-lettered.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>How often a consumer looks for expired leases.</summary>
    public double ReapSeconds { get; set; } = 5;

    /// <summary>How long one blocking take waits for a task (whole seconds; Redis and Garnet count BLMOVE's timeout in seconds).</summary>
    public int TakeWaitSeconds { get; set; } = 2;

    public TimeSpan Lease => TimeSpan.FromSeconds(LeaseSeconds);
    public TimeSpan ReapInterval => TimeSpan.FromSeconds(ReapSeconds);
    public TimeSpan TakeWait => TimeSpan.FromSeconds(TakeWaitSeconds);

    /// <summary>One line per bad setting, naming the configuration key; empty when all are valid.</summary>
    public IEnumerable<string> Problems()
    {
        if (string.IsNullOrWhiteSpace(Queue)) yield return $"{Section}:Queue must not be empty";
        if (!(LeaseSeconds >= 0.5)) yield return $"{Section}:LeaseSeconds = {LeaseSeconds}: must be at least 0.5";
        if (MaxAttempts < 1) yield return $"{Section}:MaxAttempts = {MaxAttempts}: must be at least 1";
        if (!(ReapSeconds > 0)) yield return $"{Section}:ReapSeconds = {ReapSeconds}: must be positive";
        if (TakeWaitSeconds < 1) yield return $"{Section}:TakeWaitSeconds = {TakeWaitSeconds}: must be at least 1";
    }

    public PreprocessingOptions Validated()
    {
        var problems = Problems().ToList();
        return problems.Count == 0 ? this : throw new ArgumentException(string.Join("; ", problems));
    }
}

public static class PreprocessingOptionsExtensions
{
    /// <summary>Binds <see cref="PreprocessingOptions"/> to the "Preprocessing" section, checked when the host starts:
    /// a bad setting stops it with one line per bad key.</summary>
    public static IServiceCollection AddPreprocessingOptions(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PreprocessingOptions>, Validator>());
        services.AddOptions<PreprocessingOptions>().BindConfiguration(PreprocessingOptions.Section).ValidateOnStart();
        return services;
    }

    sealed class Validator : IValidateOptions<PreprocessingOptions>
    {
        public ValidateOptionsResult Validate(string? name, PreprocessingOptions options) =>
            options.Problems().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}
