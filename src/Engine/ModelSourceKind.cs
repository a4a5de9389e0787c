using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine;

/// <summary>What kind of thing a <c>-Model</c> value names.</summary>
public enum ModelSourceKind
{
    /// <summary>A diffusers pipeline folder (<c>model_index.json</c> + one folder per component).</summary>
    DiffusersFolder,
    /// <summary>One original (ldm layout) checkpoint file: safetensors or a torch <c>.ckpt</c>.</summary>
    SingleFile,
    /// <summary>A Hugging Face hub repository id (<c>org/name</c>), downloaded into the hub cache.</summary>
    HubRepository,
}
