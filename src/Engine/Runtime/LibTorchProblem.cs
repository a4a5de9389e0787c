using System.Text.Json;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>What is wrong with a libtorch folder.</summary>
public enum LibTorchProblem { FolderNotFound, NotLibTorch, NoCuda, LoadFailed, AlreadyLoaded, Unreadable }
