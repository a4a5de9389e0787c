using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Replaces a module's parameters by state-dict name, through the settable <c>weight</c>/<c>bias</c> properties of
/// the TorchSharp layers the models are made of (so the layer's forward sees the new tensor). This is how a model
/// built on the <c>meta</c> device gets real storage without ever being randomly initialised.
/// </summary>
public static class ModuleParameters
{
    /// <summary>Every module of <paramref name="root"/> by its dotted path; the root itself is "".</summary>
    public static IReadOnlyDictionary<string, nn.Module> Owners(nn.Module root)
    {
        var owners = new Dictionary<string, nn.Module>(StringComparer.Ordinal) { [""] = root };
        foreach (var (name, module) in root.named_modules()) owners[name] = module;
        return owners;
    }

    /// <summary>Throws unless <see cref="Replace"/> can set the parameter <paramref name="key"/>.</summary>
    /// <exception cref="NotSupportedException">The owning module type has no settable parameter of
    /// that name.</exception>
    public static void CheckReplaceable(IReadOnlyDictionary<string, nn.Module> owners, string key)
    {
        var (owner, attribute) = Split(owners, key);
        if (!IsSettable(owner, attribute))
            throw new NotSupportedException(
                $"Cannot give '{key}' its own storage: " +
                $"{owner.GetType().Name} has no settable parameter '{attribute}'.");
    }

    /// <summary>
    /// Makes <paramref name="value"/> the parameter <paramref name="key"/> (no gradient), disposing
    /// the one it replaces.
    /// <paramref name="value"/> is taken over: its handle moves into the new parameter.
    /// </summary>
    /// <exception cref="NotSupportedException">The owning module type has no settable parameter of
    /// that name.</exception>
    public static void Replace(IReadOnlyDictionary<string, nn.Module> owners, string key, Tensor value)
    {
        CheckReplaceable(owners, key);
        var (owner, attribute) = Split(owners, key);
        var parameter = new Parameter(value, requires_grad: false);
        TensorAccounting.RecordParameterMade();
        switch (owner)
        {
            case Linear linear when attribute == "weight": linear.weight = parameter; break;
            case Linear linear: linear.bias = parameter; break;
            case Convolution conv when attribute == "weight": conv.weight = parameter; break;
            case Convolution conv: conv.bias = parameter; break;
            case GroupNorm norm when attribute == "weight": norm.weight = parameter; break;
            case GroupNorm norm: norm.bias = parameter; break;
            case LayerNorm norm when attribute == "weight": norm.weight = parameter; break;
            case LayerNorm norm: norm.bias = parameter; break;
            case Embedding embedding: embedding.weight = parameter; break;
            case IReplaceableParameters own: own.Replace(attribute, parameter); break;
        }
    }

    /// <summary>
    /// Makes each <paramref name="values"/>[i] the parameter <paramref name="keys"/>[i] (moved to
    /// <paramref name="device"/> first when that is not the CPU), as <see cref="Replace"/> does. Every value is taken
    /// over: on failure the ones not yet placed are disposed.
    /// </summary>
    public static void ReplaceAll(
        IReadOnlyDictionary<string, nn.Module> owners, IReadOnlyList<string> keys, Tensor?[] values,
        Device device)
    {
        try
        {
            for (int i = 0; i < keys.Count; i++)
            {
                var tensor = values[i]!;
                if (device.type != DeviceType.CPU)
                {
                    var moved = tensor.to(device);
                    tensor.Dispose();
                    tensor = moved;
                }
                Replace(owners, keys[i], tensor);
                values[i] = null;
            }
        }
        finally
        {
            foreach (var left in values) left?.Dispose();
        }
    }

    private static bool IsSettable(nn.Module owner, string attribute) => owner switch
    {
        Linear or Convolution or GroupNorm or LayerNorm => attribute is "weight" or "bias",
        Embedding => attribute == "weight",
        IReplaceableParameters own => own.CanReplace(attribute),
        _ => false,
    };

    private static (nn.Module Owner, string Attribute) Split(IReadOnlyDictionary<string, nn.Module> owners, string key)
    {
        int dot = key.LastIndexOf('.');
        string path = dot < 0 ? "" : key[..dot];
        string attribute = dot < 0 ? key : key[(dot + 1)..];
        if (!owners.TryGetValue(path, out var owner))
            throw new KeyNotFoundException($"No module '{path}' owns the parameter '{key}'.");
        return (owner, attribute);
    }
}
