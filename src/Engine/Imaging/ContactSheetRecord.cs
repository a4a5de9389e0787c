namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// What a contact sheet (<see cref="ContactSheet"/>) is made of, stored in its record: the axes and their labels, and
/// every member image with the rectangle it occupies and its own full record, so each cell can be found, cropped and
/// made again from the sheet's PNG alone.
/// </summary>
public sealed class ContactSheetRecord
{
    public int Columns { get; set; }
    public int Rows { get; set; }

    /// <summary>What the columns are told apart by, as asked (a property name or a script block's text); null for a
    /// plain grid.</summary>
    public string? XAxis { get; set; }

    /// <summary>What the rows are told apart by; null when the rows are not an axis.</summary>
    public string? YAxis { get; set; }

    /// <summary>What each caption shows (a property name or a script block's text); null without captions.</summary>
    public string? LabelBy { get; set; }

    public List<string> ColumnLabels { get; set; } = [];
    public List<string> RowLabels { get; set; } = [];

    /// <summary>The members in input order.</summary>
    public List<ContactSheetMember> Members { get; set; } = [];
}
