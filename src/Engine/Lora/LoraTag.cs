using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>One <c>&lt;lora:name:…&gt;</c> tag of a prompt, read as AUTOMATIC1111 reads its extra-network
/// arguments.</summary>
/// <param name="Text">The tag as written.</param>
public sealed record LoraTag(string Text, string Name, double TextEncoderMultiplier, double UnetMultiplier);
