namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>What a single-file checkpoint holds; a component is null when the file does not carry it.</summary>
public sealed record LdmArchitecture(LdmUNetArchitecture? UNet, LdmVaeArchitecture? Vae, LdmTextArchitecture? Text);
