namespace PSStableDiffusion.Engine.Imaging;

/// <summary>A sheet over the image size limits, or whose record would not fit in its PNG.</summary>
public sealed class ContactSheetTooLargeException(string message) : ArgumentException(message);
