// The fuzz harness. A target is one kind of input: it makes its cases (deterministic: seeded mutations of a valid
// seed input) and runs one. Run returns when the input was accepted and throws when it was refused; a refusal must be
// an exception the target names as its library's typed error (IsRefusal), on one line, naming the input's source, and
// one the CLI turns into `cnclip: error: ...` with exit code 2. Anything else is a bug: another exception, a message
// that does not say where, more than one line, or no answer within the timeout (a hang).
//
// A new kind of input (say the search API's JSON bodies) is one class: derive from FuzzTarget, build cases from a seed
// with Mutate.Bytes / Mutate.Json, run one in Run (post the body to an in-process server and throw a typed error for a
// 4xx), and add a [Fact] that calls Fuzz.AssertNoBugs(new YourTarget()).
namespace ChineseClip.Fuzz.Tests;

/// <summary>One input: what it is (for the report) and its bytes; <see cref="Source"/> is the name a refusal must
/// mention (a file path or a field), null when the input has none (bare bytes given to a decoder).</summary>
public sealed record FuzzCase(string Description, byte[] Input, string? Source = null);

public abstract class FuzzTarget : IDisposable
{
    /// <summary>A folder for the target's files, removed with it.</summary>
    protected string Work { get; } = Directory.CreateTempSubdirectory("cnclip-fuzz").FullName;

    public abstract string Name { get; }

    /// <summary>The cases, the same for the same <paramref name="random"/> seed.</summary>
    public abstract IEnumerable<FuzzCase> Cases(Random random);

    /// <summary>Feeds one case to the code under test: returns when it is accepted, throws when refused.</summary>
    public abstract void Run(FuzzCase c);

    /// <summary>Whether <paramref name="e"/> is the library's typed error for bad input of this kind.</summary>
    public abstract bool IsRefusal(Exception e);

    /// <summary>Whether users meet this input through the CLI, whose one-line exit-2 report of a refusal is checked
    /// too. An HTTP body's refusal is its 4xx answer instead.</summary>
    public virtual bool ReportedByCli => true;

    public virtual void Dispose()
    {
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }
}

/// <summary>A case the code under test handled wrongly, thrown by a target's own checks (say, good records lost).</summary>
public sealed class FuzzBugException(string message) : Exception(message);
