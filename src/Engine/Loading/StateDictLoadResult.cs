namespace PSStableDiffusion.Engine.Loading;

/// <summary>What a strict load did.</summary>
/// <param name="LoadedCount">Number of module tensors (parameters and persistent buffers) filled.</param>
/// <param name="IgnoredKeys">Source keys the key map chose to ignore (file key names).</param>
public sealed record StateDictLoadResult(int LoadedCount, IReadOnlyList<string> IgnoredKeys);
