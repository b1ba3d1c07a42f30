using System.Collections.Immutable;
using ChineseClip.Analyzers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace ChineseClip.Analyzers.Tests;

public class TemporaryScalarAnalyzerTests
{
    // Each snippet is one method body; the test reports which of its lines got CNCLIP0001.
    static async Task<int[]> FlaggedLines(string body)
    {
        string source = $$"""
            using TorchSharp;
            using static TorchSharp.torch;
            static class Snippet
            {
                static readonly Scalar One = 1;
                static void Run(Tensor a, Tensor b, Tensor x, double value)
                {
            {{body}}
                }
            }
            """;
        string runtime = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var references = Directory.GetFiles(runtime, "*.dll")
            .Where(f => Path.GetFileName(f) is "System.Runtime.dll" or "System.Private.CoreLib.dll" or "netstandard.dll" or "System.Linq.dll" or "System.Collections.dll")
            .Append(typeof(TorchSharp.Scalar).Assembly.Location)
            .Select(f => MetadataReference.CreateFromFile(f));
        var compilation = CSharpCompilation.Create("snippet", [CSharpSyntaxTree.ParseText(source)], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors)); // the snippet itself must compile
        var diagnostics = await compilation.WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new TemporaryScalarAnalyzer()))
            .GetAnalyzerDiagnosticsAsync();
        Assert.All(diagnostics, d => Assert.Equal(TemporaryScalarAnalyzer.Id, d.Id));
        const int firstBodyLine = 7; // 0-based line of the body's first line in `source`
        return diagnostics.Select(d => d.Location.GetLineSpan().StartLinePosition.Line - firstBodyLine).Distinct().Order().ToArray();
    }

    [Fact]
    public async Task Numbers_converted_by_TorchSharp_or_by_the_implicit_operator_are_flagged()
    {
        int[] flagged = await FlaggedLines("""
            var r0 = x * 0.5;
            var r1 = x.mul(value);
            var r2 = x.clamp_(0, value);
            var r3 = arange(10);
            var r4 = 2.0 / x;
            Scalar s = 0.5; var r5 = x.mul(s);
            """);
        Assert.Equal(new[] { 0, 1, 2, 3, 4, 5 }, flagged);
    }

    [Fact]
    public async Task Sums_whose_alpha_TorchSharp_makes_are_flagged()
    {
        int[] flagged = await FlaggedLines("""
            var r0 = a + b;
            var r1 = a.add(b);
            var r2 = x.add_(One);
            var r3 = x.addcdiv_(a, b);
            var r4 = torch.add(a, b);
            var sum = a; sum += b;
            """);
        Assert.Equal(new[] { 0, 1, 2, 3, 4, 5 }, flagged);
    }

    [Fact]
    public async Task Held_scalars_and_operators_without_a_hidden_scalar_pass()
    {
        Assert.Empty(await FlaggedLines("""
            using Scalar s = value;
            using (Scalar t = 0.5) x.mul_(t);
            var r0 = x.mul(s).add(b, One);
            var r1 = a - b;
            var r2 = a * b;
            var r3 = a / b;
            var r4 = x * s;
            var r5 = x.addcdiv_(a, b, value: s);
            """));
    }
}
