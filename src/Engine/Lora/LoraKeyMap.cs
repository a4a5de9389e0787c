using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.SingleFile;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// Where each LoRA layer name lands in one model. Built from the model's own module tree, so nothing is renamed by
/// pattern: kohya names are the diffusers module paths with '.' written '_' (<c>lora_unet_</c> + UNet path,
/// <c>lora_te_</c> + text-encoder path), PEFT names the paths themselves (<c>unet.</c>, <c>text_encoder.</c>), and the
/// LDM names AUTOMATIC1111 also accepts (<c>lora_unet_input_blocks_4_1_…</c>,
/// <c>lora_te_model_transformer_resblocks_N_…</c>) come from the single-file loader's <see cref="LdmKeyMap"/> for the
/// model's architecture.
/// </summary>
public sealed class LoraKeyMap
{
    private readonly Dictionary<string, List<LoraTarget>> _byName = new(StringComparer.Ordinal);

    /// <summary>The map for a UNet and text encoder.</summary>
    public LoraKeyMap(UNet2DConditionModel unet, CLIPTextModel textEncoder)
    {
        var unetLayers = Layers(unet);
        var textLayers = Layers(textEncoder);
        foreach (var (path, layer) in unetLayers)
        {
            Add("lora_unet_" + Underscored(path), new LoraTarget(LoraPart.Unet, path, layer));
            Add("unet." + path, new LoraTarget(LoraPart.Unet, path, layer));
        }
        foreach (var (path, layer) in textLayers)
        {
            Add("lora_te_" + Underscored(path), new LoraTarget(LoraPart.TextEncoder, path, layer));
            Add("text_encoder." + path, new LoraTarget(LoraPart.TextEncoder, path, layer));
        }
        if (LdmMap(unet, textEncoder) is { } ldm) AddLdmNames(ldm, unetLayers, textLayers);
    }

    /// <summary>Every name the map knows.</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>The model layers <paramref name="name"/> (a <see cref="LoraLayer.LookupName"/>) changes; false
    /// when none.</summary>
    public bool TryResolve(string name, out IReadOnlyList<LoraTarget> targets)
    {
        var found = _byName.TryGetValue(name, out var list);
        targets = found ? list! : Array.Empty<LoraTarget>();
        return found;
    }

    private static string Underscored(string path) => path.Replace('.', '_');

    /// <summary>Every Linear and Conv2d by module path: the layers a LoRA can change.</summary>
    private static Dictionary<string, nn.Module> Layers(nn.Module root) =>
        root.named_modules().Where(m => m.module is Linear or Conv2d)
            .ToDictionary(m => m.name, m => m.module, StringComparer.Ordinal);

    private void Add(string name, LoraTarget target)
    {
        if (!_byName.TryGetValue(name, out var list)) _byName[name] = list = new List<LoraTarget>();
        if (!list.Any(t => t.Module == target.Module && t.Part == target.Part && t.Chunk == target.Chunk))
            list.Add(target);
    }

    private void AddLdmNames(
        LdmKeyMap ldm, Dictionary<string, nn.Module> unetLayers, Dictionary<string, nn.Module> textLayers)
    {
        foreach (var mapping in ldm.ModuleKeys(SingleFileComponent.UNet).Values)
        {
            if (!mapping.ModuleKey.EndsWith(".weight", StringComparison.Ordinal)) continue;
            var path = mapping.ModuleKey[..^".weight".Length];
            if (!unetLayers.TryGetValue(path, out var layer)) continue;
            var source = mapping.SourceKey[LdmKeyMap.UNetPrefix.Length..^".weight".Length];
            Add("lora_unet_" + Underscored(source), new LoraTarget(LoraPart.Unet, path, layer));
        }
        foreach (var mapping in ldm.ModuleKeys(SingleFileComponent.TextEncoder).Values)
        {
            if (!mapping.ModuleKey.EndsWith(".weight", StringComparison.Ordinal)) continue;
            var path = mapping.ModuleKey[..^".weight".Length];
            if (!textLayers.TryGetValue(path, out var layer)) continue;
            // cond_stage_model.model.transformer.resblocks.N.attn.in_proj_weight ->
            // model.transformer.resblocks.N.attn.in_proj
            var source = mapping.SourceKey["cond_stage_model.".Length..];
            source = source.EndsWith("_weight", StringComparison.Ordinal)
                ? source[..^"_weight".Length] : source[..^".weight".Length];
            Add(
                "lora_te_" + Underscored(source),
                new LoraTarget(LoraPart.TextEncoder, path, layer, mapping.Chunk, mapping.Chunks));
        }
    }

    /// <summary>The single-file key map for this UNet and text encoder; null where the architecture has no LDM
    /// layout (per-level ResNet counts, for one), and then only diffusers names resolve.</summary>
    private static LdmKeyMap? LdmMap(UNet2DConditionModel unet, CLIPTextModel textEncoder)
    {
        var c = unet.Config;
        if (c.LayersPerBlock.Distinct().Count() != 1 || c.TransformerLayersPerBlock.Distinct().Count() != 1
            || c.CrossAttentionDim.Distinct().Count() != 1)
            return null;
        int levels = c.BlockOutChannels.Length;
        var onlyCross = Enumerable.Range(0, levels)
            .Select(l => c.OnlyCrossAttention.Length == 1 ? c.OnlyCrossAttention[0] : c.OnlyCrossAttention[l])
            .ToArray();
        var unetArchitecture = new LdmUNetArchitecture(
            c.InChannels, c.OutChannels, c.BlockOutChannels, c.LayersPerBlock[0],
            c.DownBlockTypes.Select(t => t.StartsWith("CrossAttn", StringComparison.Ordinal)).ToArray(), onlyCross,
            c.TransformerLayersPerBlock[0], c.CrossAttentionDim[0], c.UseLinearProjection, c.NumClassEmbeds);
        var t = textEncoder.Config;
        var text = new LdmTextArchitecture(t.HiddenSize, t.NumHiddenLayers, t.NumHiddenLayers + 1, t.IntermediateSize,
            t.VocabSize, t.MaxPositionEmbeddings);
        try
        {
            return new LdmKeyMap(new LdmArchitecture(unetArchitecture, null, text));
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
        {
            return null;
        }
    }
}
