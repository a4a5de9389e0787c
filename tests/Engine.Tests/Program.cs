using PSStableDiffusion.Engine.Tests.Loading;

namespace PSStableDiffusion.Engine.Tests;

/// <summary>
/// The test assembly's entry point (the test SDK's generated one does nothing): lets a test run engine work in a child
/// process, e.g. as another user (<see cref="ReadOnlyModelTests"/>). Test runners do not call it.
/// </summary>
public static class Program
{
    public const string GenerateReadOnlyVerb = "--generate-read-only";

    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == GenerateReadOnlyVerb) return ReadOnlyModelTests.GenerateFromChild(args[1], args[2]);
        Console.Error.WriteLine($"usage: dotnet exec PSStableDiffusion.Engine.Tests.dll {GenerateReadOnlyVerb} <model folder> <image.png>");
        return 2;
    }
}
