namespace PSStableDiffusion.Engine.Imaging;

/// <summary>One image of a contact sheet: its cell, the pixels it covers on the sheet, its caption and
/// its record.</summary>
public sealed class ContactSheetMember
{
    public int Column { get; set; }
    public int Row { get; set; }

    /// <summary>Left edge of the member's pixels on the sheet.</summary>
    public int X { get; set; }

    /// <summary>Top edge of the member's pixels on the sheet.</summary>
    public int Y { get; set; }

    public int Width { get; set; }
    public int Height { get; set; }
    public string? Caption { get; set; }

    /// <summary>The file the member was read from or saved to, if any.</summary>
    public string? SourcePath { get; set; }

    public GenerationRecord Record { get; set; } = new();
}
