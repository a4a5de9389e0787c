using System.Text.Json;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// Where libtorch comes from when the module was built against an installed libtorch (<c>build.ps1 -LibTorch</c>):
/// its settings file (<see cref="SettingsFileName"/>, next to the engine assembly) names the folder and the backend.
/// </summary>
/// <param name="Folder">The libtorch folder as given (a libtorch archive's root, Python's <c>torch</c> package, or its
/// lib folder).</param>
/// <param name="Backend"><c>cpu</c> or <c>cuda</c>; <c>cuda</c> needs the folder to hold libtorch_cuda.</param>
public sealed record LibTorchSettings(string Folder, string Backend)
{
    public bool RequiresCuda => string.Equals(Backend, "cuda", StringComparison.OrdinalIgnoreCase);
}
