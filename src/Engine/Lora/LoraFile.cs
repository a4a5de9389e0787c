using System.Security.Cryptography;
using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.SingleFile;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// A LoRA file read into its layers. It opens through the same readers as model checkpoints (the hardened
/// safetensors reader, or the restricted unpickler for <c>.pt</c>/<c>.ckpt</c>, which never runs pickled code), groups
/// the tensors by layer and checks that they form adapters. Which model layer each one changes is
/// <see cref="LoraKeyMap"/>'s business.
/// </summary>
public sealed class LoraFile : IDisposable
{
    /// <summary>The metadata key newer diffusers versions store the PEFT LoraConfig under (JSON, keys prefixed
    /// <c>unet.</c> / <c>text_encoder.</c>).</summary>
    public const string AdapterMetadataKey = "lora_adapter_metadata";

    /// <summary>The extensions a LoRA file may have.</summary>
    public static IReadOnlyList<string> Extensions { get; } = new[] { ".safetensors", ".pt", ".ckpt", ".bin" };

    /// <summary>The environment variable that lists LoRA folders (after LoraPath's), separated as PATH is.</summary>
    public const string EnvironmentVariable = "SD_LORA";

    /// <summary>The LoRA files prompts and <c>-Lora</c> name: LoraPath's <paramref name="paths"/> (folders with their
    /// subfolders, or files), then SD_LORA's folders; found as textual-inversion embeddings are.</summary>
    /// <exception cref="Networks.NetworkPathNotFoundException">A path in <paramref name="paths"/> does
    /// not exist.</exception>
    public static Networks.NetworkFileLookup FindFiles(
        IEnumerable<string>? paths, Func<string, string?>? getEnvironmentVariable = null) =>
        new(paths, Extensions.ToArray(), "LoraPath", EnvironmentVariable, getEnvironmentVariable);

    // Longest, most specific suffixes first; each names a role and the format it belongs to.
    private static readonly (string Suffix, string Role, LoraFormat Format)[] Suffixes =
    [
        (".lora_down.weight", "down", LoraFormat.Kohya), (".lora_up.weight", "up", LoraFormat.Kohya),
        (".lora_mid.weight", "mid", LoraFormat.Kohya),
        (".lora_A.weight", "down", LoraFormat.Peft), (".lora_B.weight", "up", LoraFormat.Peft),
        (".lora_linear_layer.down.weight", "down", LoraFormat.DiffusersOld),
        (".lora_linear_layer.up.weight", "up", LoraFormat.DiffusersOld),
        (".lora.down.weight", "down", LoraFormat.DiffusersOld), (".lora.up.weight", "up", LoraFormat.DiffusersOld),
        ("_lora.down.weight", "down", LoraFormat.DiffusersOld), ("_lora.up.weight", "up", LoraFormat.DiffusersOld),
        (".alpha", "alpha", LoraFormat.Kohya), (".scale", "scale", LoraFormat.Kohya),
    ];

    private LoraFile(string path, LoraFormat format, IReadOnlyList<LoraLayer> layers, string hash)
    {
        Path = path;
        Format = format;
        Layers = layers;
        ShortHash = hash;
    }

    public string Path { get; }

    /// <summary>The file name without its extension: what <c>&lt;lora:name&gt;</c> and the record call it.</summary>
    public string Name => System.IO.Path.GetFileNameWithoutExtension(Path);

    public LoraFormat Format { get; }
    public IReadOnlyList<LoraLayer> Layers { get; }

    /// <summary>AUTOMATIC1111's short LoRA hash: the first 12 hex digits of the SHA-256 of a safetensors file's tensor
    /// data (everything after its header, as the addnet hash), or of the whole file for other formats.</summary>
    public string ShortHash { get; }

    /// <summary>
    /// Reads <paramref name="path"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="SafeTensorsFormatException">A malformed or truncated safetensors file.</exception>
    /// <exception cref="Checkpoints.CheckpointFormatException">A malformed pickle checkpoint
    /// (<see cref="Checkpoints.UnsafeCheckpointException"/> when its pickle asks for code).</exception>
    /// <exception cref="UnknownLoraKeyException">Keys that are no part of a LoRA layer.</exception>
    /// <exception cref="LoraFormatException">Tensors that do not form adapters.</exception>
    public static LoraFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        using var file = CheckpointFiles.Open(path);
        var groups = Group(path, file.Keys, out var format);
        var metadata = (file as SafeTensorsFile)?.Metadata;
        var alphas = format == LoraFormat.Peft ? PeftAlphas.From(path, metadata) : null;
        var layers = new List<LoraLayer>();
        try
        {
            foreach (var (name, roles) in groups.OrderBy(g => g.Key, StringComparer.Ordinal))
                layers.Add(ReadLayer(path, file, name, roles, format, alphas));
        }
        catch
        {
            foreach (var layer in layers) layer.Dispose();
            throw;
        }
        return new LoraFile(path, format, layers, ShortHashOf(path));
    }

    /// <summary>The layers' keys grouped by layer name, each with its roles (down, up, mid, alpha, scale).</summary>
    private static Dictionary<string, Dictionary<string, string>> Group(
        string path, IEnumerable<string> keys, out LoraFormat format)
    {
        var groups = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        var unknown = new List<string>();
        var formats = new HashSet<LoraFormat>();
        foreach (var key in keys)
        {
            var match = Suffixes.FirstOrDefault(s => key.EndsWith(s.Suffix, StringComparison.Ordinal));
            if (match.Suffix is null) { unknown.Add(key); continue; }
            var name = key[..^match.Suffix.Length];
            if (match.Role is "down" or "up" or "mid") formats.Add(match.Format);
            if (!groups.TryGetValue(name, out var roles)) groups[name] = roles = new(StringComparer.Ordinal);
            roles[match.Role] = key;
        }
        if (unknown.Count > 0) throw new UnknownLoraKeyException(path, unknown);
        if (formats.Count == 0)
            throw new LoraFormatException(
                path, "it holds no LoRA layers (no lora_down/lora_up, lora_A/lora_B or lora.down/lora.up tensors).");
        if (formats.Count > 1)
            throw new LoraFormatException(path, $"it mixes naming schemes ({string.Join(", ", formats)}).");
        format = formats.Single();
        return groups;
    }

    private static LoraLayer ReadLayer(string path, ITensorFile file, string name, Dictionary<string, string> roles,
        LoraFormat format, PeftAlphas? peftAlphas)
    {
        if (!roles.TryGetValue("down", out var downKey) || !roles.TryGetValue("up", out var upKey))
            throw new LoraFormatException(
                path,
                $"layer '{name}' has " +
                (roles.ContainsKey("down") ? "a down factor but no up factor"
                    : roles.ContainsKey("up") ? "an up factor but no down factor"
                    : "an alpha or scale but no factors") + ".");
        var down = file.Read(downKey, ScalarType.Float32);
        var up = file.Read(upKey, ScalarType.Float32);
        Tensor? mid = roles.TryGetValue("mid", out var midKey) ? file.Read(midKey, ScalarType.Float32) : null;
        try
        {
            CheckFactors(path, name, down, up, mid);
            double? alpha = roles.TryGetValue("alpha", out var alphaKey) ? Scalar(path, file, alphaKey) : null;
            double? scale = roles.TryGetValue("scale", out var scaleKey) ? Scalar(path, file, scaleKey) : null;
            var lookup = format == LoraFormat.DiffusersOld ? OldDiffusersToPeft(name) : name;
            alpha ??= peftAlphas?.AlphaFor(lookup);
            return new LoraLayer(name, lookup, down, up, mid, alpha, scale);
        }
        catch
        {
            down.Dispose();
            up.Dispose();
            mid?.Dispose();
            throw;
        }
    }

    private static void CheckFactors(string path, string name, Tensor down, Tensor up, Tensor? mid)
    {
        if (down.dim() is not (2 or 4) || up.dim() != down.dim())
            throw new LoraFormatException(
                path,
                $"layer '{name}' has factors of {down.dim()} and {up.dim()} " +
                $"dimensions (2 for a linear layer, 4 for a convolution).");
        if (up.dim() == 4 && (up.shape[2] != 1 || up.shape[3] != 1))
            throw new LoraFormatException(
                path, $"layer '{name}' has an up factor [{Dims(up)}]; a convolution's must be [out, rank, 1, 1].");
        long rank = down.shape[0];
        if (rank == 0 || up.shape[1] != rank)
            throw new LoraFormatException(
                path, $"layer '{name}': down [{Dims(down)}] and up [{Dims(up)}] disagree on the rank.");
        if (mid is not null
            && (mid.dim() != 4
                || mid.shape[0] != rank || mid.shape[1] != rank || down.dim() != 4 || down.shape[2] != 1
                || down.shape[3] != 1))
            throw new LoraFormatException(
                path,
                $"layer '{name}': lora_mid [{Dims(mid)}] must be [rank, rank, kh, " +
                $"kw] between down [rank, in, 1, 1] and up (down is [{Dims(down)}]).");
    }

    private static double Scalar(string path, ITensorFile file, string key)
    {
        using var tensor = file.Read(key, ScalarType.Float64);
        if (tensor.numel() != 1)
            throw new LoraFormatException(path, $"'{key}' has {tensor.numel()} values; it must be one number.");
        var value = tensor.reshape(1).data<double>()[0];
        if (!double.IsFinite(value)) throw new LoraFormatException(path, $"'{key}' is {value}.");
        return value;
    }

    /// <summary>
    /// diffusers' names before PEFT in PEFT terms: the attention-processor layers (<c>attn1.processor.to_q_lora</c>,
    /// <c>to_out_lora</c>) are the attention's own projections (<c>attn1.to_q</c>, <c>to_out.0</c>); the text
    /// encoder's <c>self_attn.to_q_lora</c> is <c>self_attn.q_proj</c>; a name without <c>unet.</c> or
    /// <c>text_encoder.</c> is the UNet's (what <c>save_attn_procs</c> wrote).
    /// </summary>
    internal static string OldDiffusersToPeft(string name)
    {
        if (!name.StartsWith("unet.", StringComparison.Ordinal)
            && !name.StartsWith("text_encoder.", StringComparison.Ordinal))
            name = "unet." + name;
        name = name.Replace(".processor.", ".", StringComparison.Ordinal);
        if (name.StartsWith("text_encoder.", StringComparison.Ordinal))
        {
            foreach (var (old, now) in
                new[] { ("to_q", "q_proj"), ("to_k", "k_proj"), ("to_v", "v_proj"), ("to_out", "out_proj") })
                if (name.EndsWith(".self_attn." + old, StringComparison.Ordinal))
                    return name[..^old.Length] + now;
            return name;
        }
        return name.EndsWith(".to_out", StringComparison.Ordinal) ? name + ".0" : name;
    }

    /// <summary>
    /// <see cref="ShortHash"/> of <paramref name="path"/> without reading its tensors: what a replay compares with a
    /// record's "Lora hashes" to find a renamed file. Cached in <paramref name="cache"/> (default
    /// <see cref="ModelHashCache.Default"/>) across calls and sessions while the file is unchanged, so a folder is
    /// read once, and a merge per call does not read the whole file a second time only to hash it.
    /// </summary>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static string ShortHashOf(string path, ModelHashCache? cache = null)
    {
        path = System.IO.Path.GetFullPath(path);
        // Whether the data starts after a header is what CheckpointFiles.Open decides, so this hash and the one of the
        // file as opened are the same number.
        return (cache ?? ModelHashCache.Default).GetOrCompute(
            [path], () => HashOf(path, CheckpointFiles.ReadsAsSafeTensors(path)), kind: "lora-a1111");
    }

    private static string HashOf(string path, bool safetensors)
    {
        using var stream = new FileStream(
            path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16);
        if (safetensors && stream.Length >= 8)
        {
            Span<byte> length = stackalloc byte[8];
            stream.ReadExactly(length);
            long headerLength = BitConverter.ToInt64(length);
            // A header that runs past the end is no safetensors file (opening it fails); a lookup by hash over a folder
            // still hashes it, over all its bytes.
            bool fits = headerLength >= 0 && headerLength <= stream.Length - 8;
            stream.Seek(fits ? 8 + headerLength : 0, SeekOrigin.Begin);
        }
        return Convert.ToHexString(SHA256.HashData(stream))[..12].ToLowerInvariant();
    }

    /// <summary>Whether a recorded short hash names <paramref name="actual"/>: AUTOMATIC1111's short hashes compare
    /// by their common prefix (records carry 10 or 12 digits), in any case.</summary>
    public static bool SameHash(string recorded, string actual) =>
        recorded.Length > 0 && actual.Length > 0
            && (actual.StartsWith(recorded, StringComparison.OrdinalIgnoreCase)
                || recorded.StartsWith(actual, StringComparison.OrdinalIgnoreCase));

    internal static string Dims(Tensor t) => string.Join(", ", t.shape);

    public void Dispose()
    {
        foreach (var layer in Layers) layer.Dispose();
    }

    /// <summary>The alphas of a PEFT LoraConfig stored in the file's metadata (<see cref="AdapterMetadataKey"/>):
    /// <c>lora_alpha</c> per part, with <c>alpha_pattern</c> entries matching the end of a module name.</summary>
    private sealed class PeftAlphas
    {
        private readonly Dictionary<string, (double? Alpha, Dictionary<string, double> Pattern)> _byPrefix = new(
            StringComparer.Ordinal);

        internal static PeftAlphas? From(string path, IReadOnlyDictionary<string, string>? metadata)
        {
            if (metadata is null || !metadata.TryGetValue(AdapterMetadataKey, out var json)) return null;
            try
            {
                using var document = JsonDocument.Parse(json);
                var alphas = new PeftAlphas();
                foreach (var prefix in new[] { "unet", "text_encoder" })
                {
                    double? alpha = document.RootElement.TryGetProperty(prefix + ".lora_alpha", out var a)
                        ? a.GetDouble() : null;
                    var pattern = new Dictionary<string, double>(StringComparer.Ordinal);
                    if (document.RootElement.TryGetProperty(prefix + ".alpha_pattern", out var p)
                        && p.ValueKind == JsonValueKind.Object)
                        foreach (var entry in p.EnumerateObject()) pattern[entry.Name] = entry.Value.GetDouble();
                    alphas._byPrefix[prefix] = (alpha, pattern);
                }
                return alphas;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new LoraFormatException(
                    path, $"its '{AdapterMetadataKey}' metadata is not a LoraConfig ({e.Message}).");
            }
        }

        internal double? AlphaFor(string name)
        {
            int dot = name.IndexOf('.');
            if (dot < 0 || !_byPrefix.TryGetValue(name[..dot], out var config)) return null;
            var module = name[(dot + 1)..];
            foreach (var (pattern, alpha) in config.Pattern)
                if (module == pattern || module.EndsWith("." + pattern, StringComparison.Ordinal)) return alpha;
            return config.Alpha;
        }
    }
}
