namespace PSStableDiffusion.Engine.Networks;

/// <summary>A folder or file given to a lookup that does not exist.</summary>
public sealed class NetworkPathNotFoundException : FileNotFoundException
{
    public NetworkPathNotFoundException(string path, string parameterName)
        : base($"{parameterName}: '{path}' is neither a folder nor a file.", path)
    {
        ParameterName = parameterName;
    }

    /// <summary>The request property (or environment variable) that named the path.</summary>
    public string ParameterName { get; }
}
