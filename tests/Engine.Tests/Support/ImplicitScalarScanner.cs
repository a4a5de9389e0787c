using System.Collections.Concurrent;
using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>
/// Finds the calls in compiled engine code that make TorchSharp turn a number into a finalizable <c>Scalar</c> it
/// does not keep alive: the implicit conversions, and the TorchSharp methods that make one inside
/// (<c>tensor * 0.5</c>, <c>a + b</c>, whose hidden alpha is the number 1, <c>pow(0.5)</c>, <c>clamp(0, 1)</c>).
/// </summary>
/// <remarks>
/// It reads the IL of each method (the engine's, then TorchSharp's, transitively), so it sees what the C# compiler
/// chose and no source pattern can hide a conversion.
/// </remarks>
public static class ImplicitScalarScanner
{
    private static readonly Assembly TorchSharpAssembly = typeof(Scalar).Assembly;
    private static readonly ConcurrentDictionary<MethodBase, bool> Converting = new();
    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance
        | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>"Type.Method -> TorchSharp callee" for every such call in the types of these namespaces.</summary>
    public static IReadOnlyList<string> Find(Assembly assembly, IEnumerable<string> namespaces)
    {
        var prefixes = namespaces.ToArray();
        var found = new List<string>();
        foreach (var type in assembly.GetTypes().Where(t => prefixes.Any(p => t.Namespace == p || (t.Namespace ?? "").StartsWith(p + "."))))
        {
            foreach (var method in MethodsOf(type))
            {
                foreach (var callee in Callees(method))
                {
                    if (IsConverting(callee)) found.Add($"{type.FullName}.{method.Name} -> {Describe(callee)}");
                }
            }
        }
        return found;
    }

    private static IEnumerable<MethodBase> MethodsOf(Type type) =>
        type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared));

    private static string Describe(MethodBase method) =>
        $"{method.DeclaringType?.Name}.{method.Name}({string.Join(", ", method.GetParameters().Select(p => p.ParameterType.Name))})";

    /// <summary>True when the method is a number-to-Scalar conversion, or a TorchSharp method that makes one.</summary>
    private static bool IsConverting(MethodBase method)
    {
        if (method.DeclaringType is { } type && (type == typeof(Scalar) && method.Name == "op_Implicit"
            || type == typeof(ScalarExtensionMethods) && method.Name == "ToScalar"))
            return true;
        if (method.Module.Assembly != TorchSharpAssembly) return false;
        if (Converting.TryGetValue(method, out var known)) return known;
        Converting[method] = false; // a recursive TorchSharp method adds nothing while it is being read
        var converting = Callees(method).Any(IsConverting);
        Converting[method] = converting;
        return converting;
    }

    /// <summary>The methods a method body calls (call, callvirt, newobj, ldftn), decoded from its IL.</summary>
    private static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try { il = method.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException) { il = null; }
        if (il is null) yield break;
        var typeArgs = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        var position = 0;
        while (position < il.Length)
        {
            var value = il[position] == 0xFE ? (short)(0xFE00 | il[position + 1]) : il[position];
            position += il[position] == 0xFE ? 2 : 1;
            var opCode = OpCodesByValue[value];
            if (opCode.OperandType == OperandType.InlineMethod)
            {
                var token = BitConverter.ToInt32(il, position);
                MethodBase? callee;
                try { callee = method.Module.ResolveMethod(token, typeArgs, methodArgs); }
                catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException) { callee = null; }
                if (callee is not null) yield return callee;
            }
            position += OperandSize(opCode, il, position);
        }
    }

    private static int OperandSize(OpCode opCode, byte[] il, int position) => opCode.OperandType switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, position),
        _ => 4,
    };
}
