namespace PSStableDiffusion.Engine.Loading;

/// <summary>Weights that do not fit a module: the message names every offending key (up to a few)
/// and its file.</summary>
public sealed class ModelLoadException : Exception
{
    private const int ProblemsInMessage = 8;

    public ModelLoadException(string message, IReadOnlyList<string> problems) : base(message) => Problems = problems;

    /// <summary>One line per problem (missing, unexpected, duplicate key, or shape mismatch), each naming
    /// key and file.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>
    /// Throws when there are <paramref name="problems"/>: "<paramref name="what"/>: N problem(s)", then the first few,
    /// one per line. Every strict loader reports this way, checking everything before it reads a single weight.
    /// </summary>
    /// <param name="what">What could not be done, e.g. "Cannot load model.safetensors into CLIPTextModel".</param>
    internal static void ThrowIfAny(IReadOnlyList<string> problems, string what)
    {
        if (problems.Count == 0) return;
        var shown = string.Join(Environment.NewLine, problems.Take(ProblemsInMessage).Select(p => "  " + p));
        string more = problems.Count > ProblemsInMessage
            ? $"{Environment.NewLine}  ... and {problems.Count - ProblemsInMessage} more" : "";
        throw new ModelLoadException(
            $"{what}: {problems.Count} problem(s){Environment.NewLine}{shown}{more}", problems);
    }
}
