using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>
/// Reads textual-inversion embedding files the way AUTOMATIC1111 reads them
/// (modules/textual_inversion/textual_inversion.py, <c>create_embedding_from_data</c>), through the engine's hardened
/// readers: a <c>.safetensors</c> file with <see cref="SafeTensorsFile"/>; anything else (<c>.pt</c>, <c>.bin</c>) as a
/// torch file with the restricted unpickler, which runs no code. Layouts:
/// <list type="bullet">
/// <item>A1111's own: <c>string_to_param</c> holding exactly one tensor (a dict, or a torch 1.11-era
/// <c>ParameterDict</c>, whose tensors sit in <c>_parameters</c>);</item>
/// <item>a dict of exactly one tensor, whatever its key: diffusers' <c>learned_embeds</c> (<c>{token: [D]}</c>),
/// <c>emb_params</c>, and any single-tensor <c>.safetensors</c>.</item>
/// </list>
/// A 1-D tensor is one vector. Vectors are converted to float32, as A1111 does.
/// </summary>
public static class EmbeddingFile
{
    /// <summary>The extensions looked for in embedding folders, as A1111's loader takes them (images aside).</summary>
    public static readonly IReadOnlyList<string> Extensions = [".pt", ".bin", ".safetensors"];

    /// <summary>The most vectors one embedding may have: it must fit in one prompt chunk (A1111 never
    /// splits one).</summary>
    public const int MaxVectors = PromptChunker.ChunkLength;

    /// <summary>Reads <paramref name="path"/>; its trigger word is the file name without extension.</summary>
    /// <exception cref="EmbeddingFormatException">Not an embedding, several of them, or damaged.</exception>
    /// <exception cref="UnsafeCheckpointException">A pickle that references code; nothing was run.</exception>
    public static TextualInversionEmbedding Read(string path)
    {
        var name = System.IO.Path.GetFileNameWithoutExtension(path);
        string sha256 = ModelHashCache.HashFiles([path]);
        var (vectors, format) = path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? ReadSafeTensors(path)
            : ReadTorch(path);
        try
        {
            return new TextualInversionEmbedding(name, path, Checked(path, vectors), sha256, format);
        }
        catch
        {
            vectors.Dispose();
            throw;
        }
    }

    private static (Tensor Vectors, string Format) ReadSafeTensors(string path)
    {
        try
        {
            using var file = SafeTensorsFile.Open(path);
            var keys = file.Keys.ToList();
            if (keys.Contains("clip_g") && keys.Contains("clip_l"))
                throw new EmbeddingFormatException(
                    path, "it is an SDXL embedding (clip_g and clip_l), not one for SD 2.x.");
            if (keys.Count != 1)
                throw new EmbeddingFormatException(
                    path, $"it holds {keys.Count} tensors ({Preview(keys)}); an embedding file holds one.");
            return (file.Read(keys[0], ScalarType.Float32),
                keys[0] == "emb_params" ? "safetensors emb_params" : "safetensors single tensor");
        }
        catch (SafeTensorsFormatException e)
        {
            throw new EmbeddingFormatException(path, e.Message, e);
        }
    }

    private static (Tensor Vectors, string Format) ReadTorch(string path)
    {
        string format = "";
        TorchCheckpointFile file;
        try
        {
            file = TorchCheckpointFile.Open(path, root => SelectVectors(path, root, out format));
        }
        catch (UnsafeCheckpointException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new UnsafeCheckpointException($"'{path}': {e.Message}", e.RefusedGlobal, e.RefusedOpcode);
        }
        catch (CheckpointFormatException e) when (e is not UnsafeCheckpointException)
        {
            throw new EmbeddingFormatException(path, e.Message, e);
        }
        using (file)
        {
            return (file.Read(file.Keys.Single(), ScalarType.Float32), format);
        }
    }

    /// <summary>The one tensor of an A1111 or diffusers embedding pickle, named by its key.</summary>
    private static IReadOnlyDictionary<string, TorchTensorRef> SelectVectors(
        string path, object? root, out string format)
    {
        if (root is not PickleDict top)
            throw new EmbeddingFormatException(
                path, $"it holds {(root is null ? "None" : root.GetType().Name)}, not a dict.");
        if (top.TryGet("string_to_param", out var terms))
        {
            format = "A1111 .pt";
            // A ParameterDict saved by torch 1.11 keeps its tensors in the module state's _parameters (A1111's fix).
            if (terms is PickleObject { State: PickleDict state } && state.TryGet("_parameters", out var parameters))
            {
                terms = parameters;
                format = "A1111 .pt (ParameterDict)";
            }
            if (terms is not PickleDict termDict)
                throw new EmbeddingFormatException(path, "string_to_param is not a dict of tensors.");
            return SingleTensor(path, termDict, "string_to_param");
        }
        format = "diffusers concept";
        if (top.Count == 0 || top.Items[0].Value is not TorchTensorRef)
            throw new EmbeddingFormatException(path,
                $"it is neither an AUTOMATIC1111 embedding (string_to_param) nor a single " +
                $"tensor (keys: {Preview(top.Items.Select(kv => kv.Key.ToString() ?? ""))}).");
        return SingleTensor(path, top, "the file");
    }

    private static Dictionary<string, TorchTensorRef> SingleTensor(string path, PickleDict dict, string where)
    {
        if (dict.Count != 1)
            throw new EmbeddingFormatException(
                path,
                $"{where} holds {dict.Count} terms " +
                $"({Preview(dict.Items.Select(kv => kv.Key.ToString() ?? ""))}); an embedding file holds one.");
        var (key, value) = dict.Items[0];
        if (value is not TorchTensorRef tensor)
            throw new EmbeddingFormatException(path, $"{where}'s entry '{key}' is not a tensor.");
        return new Dictionary<string, TorchTensorRef>(StringComparer.Ordinal) { [key.ToString() ?? "*"] = tensor };
    }

    /// <summary>[n, D]: a 1-D tensor is one vector; at least one and at most <see
    /// cref="MaxVectors"/> vectors.</summary>
    private static Tensor Checked(string path, Tensor vectors)
    {
        if (vectors.dim() == 1) vectors = vectors.unsqueeze(0);                                   // [1, D]
        if (vectors.dim() != 2 || vectors.shape[0] < 1 || vectors.shape[1] < 1)
            throw new EmbeddingFormatException(
                path, $"its tensor has shape [{string.Join(", ", vectors.shape)}], not [vectors, width].");
        if (vectors.shape[0] > MaxVectors)
            throw new EmbeddingFormatException(
                path, $"it has {vectors.shape[0]} vectors; at most {MaxVectors} fit in one prompt chunk.");
        if (!vectors.isfinite().all().item<bool>())
            throw new EmbeddingFormatException(path, "its vectors hold NaN or infinite values.");
        return vectors.contiguous();
    }

    private static string Preview(IEnumerable<string> keys)
    {
        var list = keys.Take(4).ToList();
        return string.Join(", ", list) + (keys.Skip(4).Any() ? ", ..." : "");
    }
}
