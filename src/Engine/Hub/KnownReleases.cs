namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// SHA-256 sums of the weight files Stability AI released for Stable Diffusion 2.x, to tell whether a copy (a community
/// mirror, a file from anywhere) holds the same weights. Only sums with a public source are listed; each source is
/// cited beside it. The check never blocks loading: it only says "same weights as Stability AI's release of ..." or
/// "unverified copy".
/// </summary>
/// <remarks>
/// Not listed, for want of a source found in the public record (December 2026): 512-depth-ema (.ckpt/.safetensors),
/// x4-upscaler-ema (.ckpt/.safetensors), 512-inpainting-ema.ckpt, v2-1_768-nonema/v2-1_512-nonema, and the diffusers
/// folder files (unet/, vae/, text_encoder/) of the original stabilityai repositories (the LFS oids quoted publicly
/// are those of the sd2-community mirrors, which prove nothing about the release).
/// </remarks>
public static class KnownReleases
{
    private static readonly Dictionary<string, string> ReleaseFileBySha256 = new(StringComparer.OrdinalIgnoreCase)
    {
        // v2-1_768-ema-pruned.safetensors (stabilityai/stable-diffusion-2-1). Full sum in AUTOMATIC1111
        // /sdapi/v1/sd-models listings ("v2-1_768-ema-pruned.safetensors [dcd690123c]", hash + sha256 fields) in
        // public GitHub code; the short hash dcd690123c is the A1111 model hash quoted across A1111 API clients.
        ["dcd690123cfc64383981a31d955694f6acf2072a80537fdb612c8e58ec87a8ac"] = "v2-1_768-ema-pruned.safetensors",

        // v2-1_768-ema-pruned.ckpt (stabilityai/stable-diffusion-2-1). Deforum Stable Diffusion's model_map (sha256
        // with the URL .../stabilityai/stable-diffusion-2-1/resolve/main/v2-1_768-ema-pruned.ckpt), A1111 sd-models
        // listings ("v2-1_768-ema-pruned.ckpt [ad2a33c361]"), and a project quoting it as the repository's upstream LFS
        // SHA-256 (5,214,865,159 bytes).
        ["ad2a33c361c1f593c4a1fb32ea81afce2b5bb7d1983c6b94793a26a3b54b08a0"] = "v2-1_768-ema-pruned.ckpt",

        // v2-1_512-ema-pruned.ckpt (stabilityai/stable-diffusion-2-1-base). Deforum's model_map (with the URL
        // .../stabilityai/stable-diffusion-2-1-base/resolve/main/v2-1_512-ema-pruned.ckpt) and model-identifier code
        // mapping this sum to "2.1 512".
        ["88ecb782561455673c4b78d05093494b9c539fc6bfc08f3a9a4a0dd7b0b10f36"] = "v2-1_512-ema-pruned.ckpt",

        // v2-1_512-ema-pruned.safetensors (stabilityai/stable-diffusion-2-1-base). A1111 model hash df955bdf6b in
        // "v2-1_512-ema-pruned.safetensors [df955bdf6b]"; full sum in a public model-hash map
        // ("stable-diffusion" "2.1 Base").
        ["df955bdf6b682338ea9b55dfc0d8f3475aadf4836e204893d28b82355e0956d2"] = "v2-1_512-ema-pruned.safetensors",

        // 512-inpainting-ema.safetensors (stabilityai/stable-diffusion-2-inpainting). A1111 model hash b29e2ed9a8
        // ("Model hash: b29e2ed9a8, Model: 512-inpainting-ema" in generation parameters); full sum and size
        // (5,214,662,094 bytes) quoted as the file's LFS oid by several projects.
        ["b29e2ed9a8fe58e76f7e801bda091d23738bd74c1da3f339bcbe2d40922fcb60"] = "512-inpainting-ema.safetensors",
    };

    /// <summary>What <see cref="Describe"/> says of a file that matches no release sum.</summary>
    public const string Unverified = "unverified copy";

    /// <summary>The released file a SHA-256 belongs to, or null.</summary>
    public static string? ReleaseFile(string? sha256) =>
        sha256 is not null && ReleaseFileBySha256.TryGetValue(sha256, out var file) ? file : null;

    /// <summary>"same weights as Stability AI's release of &lt;file&gt;" when one of <paramref name="sha256s"/> is a
    /// release sum, else "unverified copy".</summary>
    public static string Describe(IEnumerable<string?> sha256s) =>
        sha256s.Select(ReleaseFile).FirstOrDefault(f => f is not null) is { } file
            ? $"same weights as Stability AI's release of {file}"
            : Unverified;

    /// <summary>The sums, for documentation and tests.</summary>
    public static IReadOnlyDictionary<string, string> All => ReleaseFileBySha256;
}
