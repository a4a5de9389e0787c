using System.Text.Json;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>The libtorch folder a module was built against cannot be used; the message names the folder
/// and the fix.</summary>
public sealed class LibTorchFolderException(string folder, LibTorchProblem problem, string message) : Exception(message)
{
    public string Folder { get; } = folder;
    public LibTorchProblem Problem { get; } = problem;
}
