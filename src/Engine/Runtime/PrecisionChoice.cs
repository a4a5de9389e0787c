namespace PSStableDiffusion.Engine.Runtime;

/// <summary>The precision a call runs in, why, and what the user should hear about it.</summary>
/// <param name="Precision">Never <see cref="Engine.Precision.Auto"/>.</param>
/// <param name="Reason">One sentence for -Verbose and the image's record.</param>
/// <param name="Warning">Set when the choice is the user's and the measurement says it is slower.</param>
public sealed record PrecisionChoice(Precision Precision, string Reason, string? Warning = null);
