using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// LoRAs merged into a model for one call, and taken out again when disposed.
/// </summary>
/// <remarks>
/// How: each changed layer gets a new weight tensor W + Σ multiplier × scale × up @ down for the call, and its own
/// weight tensor back afterwards: the original storage is never written, so other calls see it unchanged, a
/// copy-on-write mapped weight never gets private pages, and the restore is exact (the same tensor, not a subtraction).
/// The engine cache gives a call exclusive use of its engine, so no other call runs on the merged weights. The cost is
/// one weight-sized tensor per changed layer for the call; the steps run at the base model's speed (see bench/ for the
/// figures against applying the factors at run time). While the text encoder is changed, the prompt cache keys its
/// entries by the LoRAs.
/// </remarks>
public sealed class AppliedLoras : IDisposable
{
    private readonly List<(nn.Module Layer, Tensor Original)> _swapped = new();
    private readonly PromptEncoderState? _promptEncoderState;

    private AppliedLoras(Text.PromptEncoder? promptEncoder, string? textEncoderState)
    {
        if (textEncoderState is not null && promptEncoder is not null)
            _promptEncoderState = new PromptEncoderState(promptEncoder, textEncoderState);
    }

    /// <summary>The files applied, in order, with their short hashes.</summary>
    public IReadOnlyList<LoraUse> Applied { get; private init; } = [];

    /// <summary>How many model layers the call changes.</summary>
    public int ChangedLayers => _swapped.Count;

    /// <summary>Applies <paramref name="loras"/> to <paramref name="model"/> until disposed; nothing when the
    /// list is empty.</summary>
    /// <param name="warn">Told when a file's hash is not the one a replayed record names (another version
    /// of the file).</param>
    /// <exception cref="UnknownLoraKeyException">A LoRA layer maps to no layer of the model.</exception>
    /// <exception cref="LoraModelMismatchException">A LoRA layer does not fit its model layer.</exception>
    /// <exception cref="LoraFormatException">The file's tensors do not form adapters.</exception>
    public static AppliedLoras Apply(
        StableDiffusionModel model, IReadOnlyList<LoraRequest> loras, Action<string>? log = null,
        Action<string>? warn = null) =>
        Apply(model.Unet, model.TextEncoder, model.PromptEncoder, loras, log, warn);

    /// <summary>As
    /// <see cref="Apply(StableDiffusionModel, IReadOnlyList{LoraRequest}, Action{string}?, Action{string}?)"/>, on
    /// networks outside a model (the benchmark's); <paramref name="promptEncoder"/>, when given, keys its cache by the
    /// LoRAs meanwhile.</summary>
    public static AppliedLoras Apply(Models.Unet.UNet2DConditionModel unet, Models.Clip.CLIPTextModel textEncoder,
        Text.PromptEncoder? promptEncoder, IReadOnlyList<LoraRequest> loras, Action<string>? log = null,
        Action<string>? warn = null)
    {
        if (loras.Count == 0) return new AppliedLoras(promptEncoder, null);
        var updates = new LoraUpdates(new LoraKeyMap(unet, textEncoder));
        var applied = new List<LoraUse>();
        try
        {
            foreach (var request in loras)
            {
                using var file = LoraFile.Open(request.Path);
                updates.Add(file, request.TextEncoderMultiplier, request.UnetMultiplier);
                applied.Add(new LoraUse(
                    request.Name, file.ShortHash, file.Path, request.TextEncoderMultiplier, request.UnetMultiplier,
                    request.FromPrompt));
                log?.Invoke(
                    $"LoRA '{request.Name}' ({file.Format}, {file.Layers.Count} layers, hash {file.ShortHash}): " +
                            $"text encoder × {request.TextEncoderMultiplier}, UNet × {request.UnetMultiplier}.");
                if (request.RecordedHash is { Length: > 0 } recorded && !LoraFile.SameHash(recorded, file.ShortHash))
                    warn?.Invoke(
                        $"The LoRA '{request.Name}' ('{file.Path}') has " +
                        $"hash {file.ShortHash}, but the image was made with " +
                                 $"{recorded}: another version of the file, so the image may differ.");
            }
            var textEncoderState = updates.TouchesTextEncoder
                ? string.Join(';', applied.Select(u => $"{u.Hash}*{u.TextEncoderMultiplier:R}"))
                : null;
            var result = new AppliedLoras(promptEncoder, textEncoderState) { Applied = applied };
            var deltas = updates.TakeDeltas();
            int next = 0;
            try
            {
                for (; next < deltas.Count; next++) result.Swap(deltas[next].Layer, deltas[next].Delta);
            }
            catch
            {
                for (next++; next < deltas.Count; next++) deltas[next].Delta.Dispose();
                result.Dispose();
                throw;
            }
            return result;
        }
        finally
        {
            updates.Dispose();
            // The file's factors and the updates are freed now: hand glibc's cached pages back instead of keeping them.
            TorchMemory.ReleaseFreeHeap();
        }
    }

    /// <summary>Gives <paramref name="layer"/> the weight W + delta, keeping W's tensor to put back. Takes
    /// <paramref name="delta"/> (disposed or reused): for a float32 CPU weight the merged tensor is the
    /// delta itself with W added in place (the same sum, as addition commutes), so the merge holds no second
    /// layer-sized tensor.</summary>
    private void Swap(nn.Module layer, Tensor delta)
    {
        using var noGrad = no_grad();
        var weight = WeightOf(layer);
        Tensor merged;
        try
        {
            if (weight.dtype == ScalarType.Float32
                && weight.device_type == DeviceType.CPU && delta.device_type == DeviceType.CPU)
            {
                // W's shape
                merged = delta.ScalarSafe().AddInPlace(weight);
            }
            else
            {
                using var scope = NewDisposeScope();
                // W's shape
                var sum = (weight.to(ScalarType.Float32).ScalarSafe() + delta.to(weight.device)).Tensor;
                merged = sum.to(weight.dtype).contiguous().MoveToOuterDisposeScope();
                delta.Dispose();
            }
        }
        catch
        {
            delta.Dispose();
            throw;
        }
        // same storage, own handle
        var original = weight.alias();
        try
        {
            SetWeight(layer, merged);
        }
        catch
        {
            original.Dispose();
            merged.Dispose();
            throw;
        }
        _swapped.Add((layer, original));
    }

    private static Tensor WeightOf(nn.Module layer) => layer switch
    {
        Linear linear => linear.weight,
        Conv2d conv => conv.weight!,
        _ => throw new NotSupportedException($"A LoRA cannot change a {layer.GetType().Name}."),
    };

    /// <summary>Makes <paramref name="value"/> the layer's weight; the setter disposes the weight it replaces
    /// (its handle only: a kept alias holds the storage).</summary>
    private static void SetWeight(nn.Module layer, Tensor value)
    {
        var parameter = new Parameter(value, requires_grad: false);
        TensorAccounting.RecordParameterMade();
        switch (layer)
        {
            case Linear linear: linear.weight = parameter; break;
            case Conv2d conv: conv.weight = parameter; break;
        }
    }

    /// <summary>Puts every original weight back (exactly: the same storage) and frees the merged ones.</summary>
    public void Dispose()
    {
        for (int i = _swapped.Count - 1; i >= 0; i--)
            SetWeight(_swapped[i].Layer, _swapped[i].Original);
        bool freed = _swapped.Count > 0;
        _swapped.Clear();
        _promptEncoderState?.Dispose();
        // glibc keeps freed blocks under its mmap threshold (up to 32 MiB: most merged weights) for reuse; without a
        // trim the merged copies would stay resident after the call although nothing holds them.
        if (freed) TorchMemory.ReleaseFreeHeap();
    }

    /// <summary>Keys the model's prompt cache by the LoRAs while they change the text encoder.</summary>
    private sealed class PromptEncoderState : IDisposable
    {
        private readonly Text.PromptEncoder _encoder;

        public PromptEncoderState(Text.PromptEncoder encoder, string state)
        {
            _encoder = encoder;
            _encoder.TextEncoderState = state;
        }

        public void Dispose() => _encoder.TextEncoderState = "";
    }
}
