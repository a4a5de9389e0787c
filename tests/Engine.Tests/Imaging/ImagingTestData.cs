namespace PSStableDiffusion.Engine.Tests.Imaging;

/// <summary>Paths of the imaging fixtures (the golden cases are read with <see cref="Support.Golden.Case"/>).</summary>
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
}
