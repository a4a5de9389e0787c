namespace PSStableDiffusion.Engine.Imaging;

/// <summary>One image of a contact sheet and the cell it goes in (0-based column and row).</summary>
public sealed record ContactSheetCell(SDImage Image, int Column, int Row, string? Caption = null);
