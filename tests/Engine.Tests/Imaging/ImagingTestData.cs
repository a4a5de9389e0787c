using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Tests.Support;

namespace PSStableDiffusion.Engine.Tests.Imaging;

/// <summary>Paths of the imaging fixtures, and golden case tolerances.</summary>
internal static class ImagingTestData
{
    public static string Fixture(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Engine.Tests", "Imaging", "Fixtures", name);
            if (File.Exists(candidate)) return candidate;
            dir = dir.Parent;
        }
        throw new FileNotFoundException($"Imaging fixture {name} not found above {AppContext.BaseDirectory}");
    }

    public static SafeTensorsFile OpenIo(string caseName) => SafeTensorsFile.Open(Golden.Path(caseName, "io.safetensors"));

    public static double Tolerance(string caseName, string tensor)
    {
        using var doc = Golden.ParseJson(File.ReadAllText(Golden.Path(caseName, "case.json")));
        return doc.RootElement.GetProperty("tolerances").GetProperty(tensor).GetProperty("max_abs").GetDouble();
    }

    public static string TempPath(string extension) => Path.Combine(Path.GetTempPath(), $"psd-imaging-{Guid.NewGuid():N}{extension}");
}
