using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// The weight updates of one call's LoRAs, summed per model layer (float32, CPU): multiplier × scale × up @ down,
/// checked against the layer's shape. Several LoRAs, and several LoRA layers on one model layer, add up.
/// </summary>
internal sealed class LoraUpdates(LoraKeyMap map) : IDisposable
{
    private readonly Dictionary<nn.Module, Tensor> _deltas = new(ReferenceEqualityComparer.Instance);

    /// <summary>The summed update of each changed layer (still owned here).</summary>
    public IEnumerable<(nn.Module Layer, Tensor Delta)> Deltas => _deltas.Select(d => (d.Key, d.Value));

    /// <summary>The summed update of each changed layer, handed over: the caller disposes each (or reuses
    /// its memory).</summary>
    public List<(nn.Module Layer, Tensor Delta)> TakeDeltas()
    {
        var deltas = _deltas.Select(d => (d.Key, d.Value)).ToList();
        _deltas.Clear();
        return deltas;
    }

    public bool TouchesTextEncoder { get; private set; }

    /// <exception cref="UnknownLoraKeyException">Layers that map to nothing, all named.</exception>
    /// <exception cref="LoraModelMismatchException">The first layer that does not fit.</exception>
    public void Add(LoraFile file, double textEncoderMultiplier, double unetMultiplier)
    {
        var resolved = new List<(LoraLayer Layer, IReadOnlyList<LoraTarget> Targets)>();
        var unknown = new List<string>();
        foreach (var layer in file.Layers)
        {
            if (map.TryResolve(layer.LookupName, out var targets)) resolved.Add((layer, targets));
            else unknown.Add(layer.Name);
        }
        if (unknown.Count > 0) throw new UnknownLoraKeyException(file.Path, unknown);
        foreach (var (layer, targets) in resolved)
        {
            var multiplier = targets[0].Part == LoraPart.TextEncoder ? textEncoderMultiplier : unetMultiplier;
            // [out·chunks, in(, kh, kw)]
            using var product = layer.Product();
            foreach (var target in targets)
            {
                var shape = WeightShape(target.Layer);
                var update = Fit(file.Path, layer, target, product, shape);
                if (multiplier == 0) { update.Dispose(); continue; }
                update.ScalarSafe().MultiplyInPlace(multiplier * layer.Scale);
                if (_deltas.TryGetValue(target.Layer, out var sum))
                {
                    sum.ScalarSafe().AddInPlace(update);
                    update.Dispose();
                }
                else _deltas[target.Layer] = update;
                TouchesTextEncoder |= target.Part == LoraPart.TextEncoder;
            }
        }
    }

    private static long[] WeightShape(nn.Module layer) => layer switch
    {
        Linear linear => linear.weight.shape,
        Conv2d conv => conv.weight!.shape,
        _ => throw new NotSupportedException($"A LoRA cannot change a {layer.GetType().Name}."),
    };

    /// <summary>The update for <paramref name="target"/> in its weight's shape (a new tensor): its rows of a fused
    /// layer, 1×1 kernels as matrices and back, and a conv_in update zero-padded to more input channels (a LoRA made
    /// on a 4-channel model used on a 9-channel inpainting model, as AUTOMATIC1111 does).</summary>
    private static Tensor Fit(string path, LoraLayer layer, LoraTarget target, Tensor product, long[] shape)
    {
        var part = product;
        if (target.Chunks > 1)
        {
            if (product.shape[0] % target.Chunks != 0 || product.shape[0] / target.Chunks != shape[0])
                throw Mismatch(
                    path, layer, target, product.shape, shape, $"a fused layer of {target.Chunks} × {shape[0]} rows");
            part = product.narrow(0, target.Chunk * shape[0], shape[0]);
        }
        long[] have = part.shape;
        if (shape.Length == 2 && have.Length == 4 && have[2] == 1 && have[3] == 1)
            return part.reshape(have[0], have[1]).clone();
        if (shape.Length == 4 && have.Length == 2 && shape[2] == 1 && shape[3] == 1)
            return part.reshape(have[0], have[1], 1, 1).clone();
        if (have.SequenceEqual(shape)) return part.clone();
        bool paddable = target.Part == LoraPart.Unet
            && target.Module == "conv_in" && have.Length == 4 && shape.Length == 4
            && have[0] == shape[0] && have[1] < shape[1] && have[2] == shape[2] && have[3] == shape[3];
        if (!paddable) throw Mismatch(path, layer, target, have, shape, null);
        var padded = zeros(shape, ScalarType.Float32);
        padded.narrow(1, 0, have[1]).copy_(part);
        return padded;
    }

    private static LoraModelMismatchException Mismatch(
        string path, LoraLayer layer, LoraTarget target, long[] have, long[] shape, string? expected)
    {
        var reason = $"its update is [{string.Join(", ", have)}] but " +
            $"{(target.Part == LoraPart.Unet ? "the UNet's" : "the text encoder's")} " +
                     $"{target.Module} weight is " +
                     $"[{string.Join(", ", shape)}]{(expected is null ? "" : $" ({expected})")}.";
        if (have.Contains(768) && !shape.Contains(768) && shape.Contains(1024))
            reason += " 768-wide layers are Stable Diffusion 1.x's (its text encoder " +
                "is 768 wide; SD 2.x's is 1024): this LoRA was made for SD 1.x.";
        return new LoraModelMismatchException(path, layer.Name, reason);
    }

    public void Dispose()
    {
        foreach (var delta in _deltas.Values) delta.Dispose();
        _deltas.Clear();
    }
}
