// CNCLIP0001: no TorchSharp Scalar that only the finalizer frees may reach a native call.
//
// TorchSharp 0.107 turns a number into a Scalar (a native c10::Scalar behind a managed object with a finalizer) for
// every `tensor * 0.5`, `tensor + tensor` (an alpha of 1), `clamp(min, max)` and so on, and passes only its native
// pointer on. Once the pointer is read the managed object is garbage, so a collection on another thread while libtorch
// still works can run the finalizer and free the c10::Scalar under libtorch's feet: a clean-clone CI run crashed so in
// c10::Scalar::toFloat (upstream: dotnet/TorchSharp pull requests 1434 and 1496, open). The safe forms pass a Scalar
// the caller holds (a using declaration or a static field) past the call. Roslyn has no built-in rule for a
// library's implicit conversion, hence this analyzer.
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace ChineseClip.Analyzers;

[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class TemporaryScalarAnalyzer : DiagnosticAnalyzer
{
    public const string Id = "CNCLIP0001";

    static readonly DiagnosticDescriptor Rule = new(
        Id,
        "A TorchSharp Scalar that only the finalizer frees reaches a native call",
        "{0}: TorchSharp makes a temporary Scalar here that a collection can free while libtorch reads it; hold a Scalar across the call (a `using Scalar s = value;`, a static readonly field, Sum.Of for a sum of tensors, Sum.One for an alpha)",
        "Reliability",
        DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    // Methods that make a Scalar inside TorchSharp (an alpha or value of 1) when called with this many arguments:
    // Tensor's instance methods, and torch's static ones, which take the tensor first.
    static readonly ImmutableDictionary<string, int> HiddenAlpha = ImmutableDictionary.CreateRange(new[]
    {
        new KeyValuePair<string, int>("add", 1), new KeyValuePair<string, int>("add_", 1),
        new KeyValuePair<string, int>("addcdiv", 2), new KeyValuePair<string, int>("addcdiv_", 2),
    });

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Rule);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            var tensor = start.Compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
            if (scalar is null || tensor is null) return;
            start.RegisterOperationAction(c => Conversion(c, scalar), OperationKind.Conversion);
            start.RegisterOperationAction(c => Operator(c, tensor, scalar), OperationKind.Binary, OperationKind.CompoundAssignment);
            var torch = start.Compilation.GetTypeByMetadataName("TorchSharp.torch");
            start.RegisterOperationAction(c => Invocation(c, tensor, torch), OperationKind.Invocation);
        });
    }

    // `x.mul(0.5)`, `clamp(min: 0)`: a number converted to Scalar by the implicit operator, in our code.
    static void Conversion(OperationAnalysisContext c, INamedTypeSymbol scalar)
    {
        var conversion = (IConversionOperation)c.Operation;
        if (!conversion.IsImplicit || !SymbolEqualityComparer.Default.Equals(conversion.Type, scalar) || !conversion.Conversion.IsUserDefined) return;
        if (Held(conversion)) return;
        c.ReportDiagnostic(Diagnostic.Create(Rule, conversion.Syntax.GetLocation(), $"{conversion.Operand.Type?.ToDisplayString() ?? "a value"} converted to Scalar"));
    }

    // A field's initializer (`static readonly Scalar One = 1;`) or a using declaration's (`using Scalar s = 0.5;`)
    // holds the Scalar past any call that reads it. A plain local does not: it is garbage once its handle is read.
    static bool Held(IOperation conversion)
    {
        IOperation? parent = conversion.Parent;
        if (parent is IFieldInitializerOperation or IPropertyInitializerOperation) return true;
        if (parent is not IVariableInitializerOperation) return false;
        for (IOperation? up = parent.Parent; up is not null; up = up.Parent)
        {
            if (up is IUsingDeclarationOperation or IUsingOperation) return true;
            if (up is not (IVariableDeclaratorOperation or IVariableDeclarationOperation or IVariableDeclarationGroupOperation)) return false;
        }
        return false;
    }

    // `a + b`, `x * 0.5`, `sum += a`: Tensor's operators convert a number inside TorchSharp, and `+` (or a Scalar minus
    // a tensor) calls add(b), whose alpha of 1 is made there too.
    static void Operator(OperationAnalysisContext c, INamedTypeSymbol tensor, INamedTypeSymbol scalar)
    {
        var (method, kind) = c.Operation switch
        {
            IBinaryOperation b => (b.OperatorMethod, b.OperatorKind),
            ICompoundAssignmentOperation a => (a.OperatorMethod, a.OperatorKind),
            _ => (null, BinaryOperatorKind.None),
        };
        if (method is null || !SymbolEqualityComparer.Default.Equals(method.ContainingType, tensor)) return;
        bool number = method.Parameters.Any(p => p.Type.SpecialType != SpecialType.None);
        bool alpha = kind == BinaryOperatorKind.Add
            || (kind == BinaryOperatorKind.Subtract && SymbolEqualityComparer.Default.Equals(method.Parameters[0].Type, scalar));
        if (number || alpha) c.ReportDiagnostic(Diagnostic.Create(Rule, c.Operation.Syntax.GetLocation(), $"Tensor operator {kind}"));
    }

    // `a.add(b)`, `x.addcdiv_(n, d)`, `torch.add(a, b)`: overloads that pass an alpha or value of 1 inside TorchSharp.
    static void Invocation(OperationAnalysisContext c, INamedTypeSymbol tensor, INamedTypeSymbol? torch)
    {
        var invocation = (IInvocationOperation)c.Operation;
        var method = invocation.TargetMethod;
        int extra;
        if (SymbolEqualityComparer.Default.Equals(method.ContainingType, tensor) && !method.IsStatic) extra = 0;
        else if (torch is not null && SymbolEqualityComparer.Default.Equals(method.ContainingType, torch) && method.IsStatic) extra = 1;
        else return;
        if (HiddenAlpha.TryGetValue(method.Name, out int arguments) && method.Parameters.Length == arguments + extra)
            c.ReportDiagnostic(Diagnostic.Create(Rule, invocation.Syntax.GetLocation(), $"{method.ContainingType.Name}.{method.Name} without its alpha or value"));
    }
}
