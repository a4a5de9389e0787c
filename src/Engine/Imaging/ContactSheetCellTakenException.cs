namespace PSStableDiffusion.Engine.Imaging;

/// <summary>Two images that the axes put in the same cell.</summary>
public sealed class ContactSheetCellTakenException(string message) : ArgumentException(message);
