namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// The fields of an ldm inference YAML that matter for SD 2.x, read by path, and the check that the YAML describes the
/// checkpoint it came with.
/// </summary>
internal sealed class LdmConfigView
{
    private const string Model = "model.params.";
    private const string UNet = Model + "unet_config.params.";
    private const string Vae = Model + "first_stage_config.params.";
    private const string TextTower = "text_tower.";

    private readonly LdmYamlMap _root;
    private readonly string _checkpointPath;

    public LdmConfigView(LdmYamlMap root, string configPath, string checkpointPath)
    {
        _root = root; ConfigPath = configPath; _checkpointPath = checkpointPath;
        if (_root.Get("model.params") is null)
            throw new SingleFileCheckpointException(configPath, "not an ldm config: no 'model.params' section.");
    }

    public string ConfigPath { get; }

    /// <summary><c>v</c> or <c>eps</c>; null when absent (ldm's default is eps).</summary>
    public string? Parameterization => _root.GetString(Model + "parameterization", ConfigPath);

    public double? LinearStart => _root.GetDouble(Model + "linear_start", ConfigPath);
    public double? LinearEnd => _root.GetDouble(Model + "linear_end", ConfigPath);
    public int? Timesteps => _root.GetInt(Model + "timesteps", ConfigPath);

    /// <summary>Latent size the model was trained at (<c>model.params.image_size</c>).</summary>
    public int? ImageSize => _root.GetInt(Model + "image_size", ConfigPath);

    public double? ScaleFactor => _root.GetDouble(Model + "scale_factor", ConfigPath);

    public double? LowScaleLinearStart =>
        _root.GetDouble(Model + "low_scale_config.params.noise_schedule_config.linear_start", ConfigPath);
    public double? LowScaleLinearEnd =>
        _root.GetDouble(Model + "low_scale_config.params.noise_schedule_config.linear_end", ConfigPath);
    public int? MaxNoiseLevel => _root.GetInt(Model + "low_scale_config.params.max_noise_level", ConfigPath);

    /// <summary>(num_head_channels, num_heads), each -1 when absent, as ldm's UNetModel defaults them.</summary>
    public (int HeadChannels, int Heads) HeadSettings =>
        (_root.GetInt(UNet + "num_head_channels", ConfigPath) ?? -1, _root.GetInt(
            UNet + "num_heads", ConfigPath) ?? -1);

    /// <summary>Our fixtures' description of a non-standard text tower (real SD 2.x configs name ViT-H-14
    /// implicitly).</summary>
    public int? TextTowerHeads => _root.GetInt(TextTower + "heads", ConfigPath);

    private SingleFileCheckpointException Mismatch(string field, object? configValue, object? checkpointValue) =>
        new(
            _checkpointPath,
            $"the config {ConfigPath} says {field} = {Format(configValue)}, " +
            $"but the checkpoint has {Format(checkpointValue)}.");

    private static string Format(object? value) => value switch
    {
        null => "(absent)",
        System.Collections.IEnumerable list and not string => $"[{string.Join(", ", list.Cast<object>())}]",
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };

    private void Expect<T>(string field, T? configValue, T checkpointValue) where T : struct
    {
        if (configValue is T value && !EqualityComparer<T>.Default.Equals(value, checkpointValue))
            throw Mismatch(field, value, checkpointValue);
    }

    /// <summary>
    /// Checks every architecture field the YAML states against what the weights show, and applies what only the YAML
    /// knows: which attentions are cross-only, and which text layer SD reads.
    /// </summary>
    /// <exception cref="SingleFileCheckpointException">The YAML and the weights disagree; the message names
    /// the field.</exception>
    public (LdmUNetArchitecture UNet, LdmTextArchitecture Text) CheckAgainst(
        LdmUNetArchitecture unet, LdmVaeArchitecture vae,
        LdmTextArchitecture text, List<string> notes)
    {
        string S = ConfigPath;
        Expect(UNet + "in_channels", _root.GetInt(UNet + "in_channels", S), unet.InChannels);
        Expect(UNet + "out_channels", _root.GetInt(UNet + "out_channels", S), unet.OutChannels);
        Expect(UNet + "num_res_blocks", _root.GetInt(UNet + "num_res_blocks", S), unet.LayersPerBlock);
        Expect(UNet + "context_dim", _root.GetInt(UNet + "context_dim", S), unet.CrossAttentionDim);
        Expect(UNet + "transformer_depth", _root.GetInt(UNet + "transformer_depth", S), unet.TransformerDepth);
        Expect(
            UNet + "use_linear_in_transformer",
            _root.GetBool(UNet + "use_linear_in_transformer", S) ?? false, unet.UseLinearProjection);
        Expect(UNet + "num_classes", _root.GetInt(UNet + "num_classes", S), unet.NumClassEmbeds ?? 0);
        if (unet.NumClassEmbeds is not null && _root.GetInt(UNet + "num_classes", S) is null)
            throw Mismatch(UNet + "num_classes", null, unet.NumClassEmbeds);

        if (_root.GetInt(UNet + "model_channels", S) is int modelChannels)
        {
            var mult = _root.GetIntList(UNet + "channel_mult", S) ?? new[] { 1, 2, 4, 8 }; // ldm's default
            var widths = mult.Select(m => m * modelChannels).ToArray();
            if (!widths.SequenceEqual(unet.BlockOutChannels))
                throw Mismatch($"{UNet}model_channels x channel_mult", widths, unet.BlockOutChannels);
        }
        if (_root.GetIntList(UNet + "attention_resolutions", S) is { } resolutions)
        {
            // ldm adds attention at every level whose downsampling rate (1, 2, 4, ...) is listed.
            var levels = Enumerable.Range(0, unet.Levels).Select(l => resolutions.Contains(1 << l)).ToArray();
            if (!levels.SequenceEqual(unet.LevelHasAttention))
                throw Mismatch(UNet + "attention_resolutions (levels with attention)", levels, unet.LevelHasAttention);
        }
        var onlyCross = unet.OnlyCrossAttention.ToArray();
        if (_root.GetBoolList(UNet + "disable_self_attentions", S) is { } disabled)
        {
            if (disabled.Length != unet.Levels)
                throw Mismatch(UNet + "disable_self_attentions (entries)", disabled.Length, unet.Levels);
            for (int level = 0; level < unet.Levels; level++)
            {
                // Levels without attention keep the config's value too, as diffusers' conversion copies the list.
                if (!unet.LevelHasAttention[level]) { onlyCross[level] = disabled[level]; continue; }
                bool ambiguous = unet.BlockOutChannels[level] == unet.CrossAttentionDim;
                if (!ambiguous && disabled[level] != onlyCross[level])
                    throw Mismatch($"{UNet}disable_self_attentions[{level}]", disabled[level], onlyCross[level]);
                onlyCross[level] = disabled[level];
            }
            notes.Add(
                $"Cross-attention-only levels from config disable_self_attentions [{string.Join(", ", disabled)}].");
        }
        if (_root.GetBool(UNet + "disable_middle_self_attn", S) == true)
            throw new SingleFileCheckpointException(
                ConfigPath,
                "disable_middle_self_attn: true is not supported (diffusers' mid block always self-attends).");

        Expect(Vae + "embed_dim", _root.GetInt(Vae + "embed_dim", S), vae.LatentChannels);
        Expect(Vae + "ddconfig.z_channels", _root.GetInt(Vae + "ddconfig.z_channels", S), vae.LatentChannels);
        Expect(Vae + "ddconfig.in_channels", _root.GetInt(Vae + "ddconfig.in_channels", S), vae.InChannels);
        Expect(Vae + "ddconfig.out_ch", _root.GetInt(Vae + "ddconfig.out_ch", S), vae.OutChannels);
        Expect(Vae + "ddconfig.num_res_blocks", _root.GetInt(Vae + "ddconfig.num_res_blocks", S), vae.LayersPerBlock);
        if (_root.GetInt(Vae + "ddconfig.ch", S) is int ch)
        {
            var mult = _root.GetIntList(Vae + "ddconfig.ch_mult", S) ?? new[] { 1, 2, 4, 8 }; // ldm's default
            var widths = mult.Select(m => m * ch).ToArray();
            if (!widths.SequenceEqual(vae.BlockOutChannels))
                throw Mismatch($"{Vae}ddconfig.ch x ch_mult", widths, vae.BlockOutChannels);
        }

        Expect(TextTower + "width", _root.GetInt(TextTower + "width", S), text.Width);
        Expect(TextTower + "layers", _root.GetInt(TextTower + "layers", S), text.CheckpointLayers);
        Expect(TextTower + "mlp_width", _root.GetInt(TextTower + "mlp_width", S), text.MlpWidth);
        // FrozenOpenCLIPEmbedder's layer: "penultimate" (every SD 2.x config) skips the last block; "last" runs all.
        var layer = _root.GetString(Model + "cond_stage_config.params.layer", S) ?? "last";
        text = layer switch
        {
            "penultimate" => text with { Layers = text.CheckpointLayers - 1 },
            "last" => text with { Layers = text.CheckpointLayers },
            _ =>
                throw new SingleFileCheckpointException(
                    ConfigPath, $"cond_stage_config.params.layer '{layer}' is not supported (penultimate or last)."),
        };
        if (layer == "last")
            notes.Add("Text encoder runs every OpenCLIP block: config cond_stage_config layer 'last'.");
        return (unet with { OnlyCrossAttention = onlyCross }, text);
    }
}
