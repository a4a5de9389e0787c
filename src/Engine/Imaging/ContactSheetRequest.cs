namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// What to lay out: the images with their cells, the axis labels, captions and spacing. <see cref="ByAxes"/> and
/// <see cref="InColumns"/> build one from images in input order.
/// </summary>
public sealed class ContactSheetRequest
{
    public required IReadOnlyList<ContactSheetCell> Cells { get; init; }
    public required int Columns { get; init; }
    public required int Rows { get; init; }

    /// <summary>One per column, or empty for no column labels.</summary>
    public IReadOnlyList<string> ColumnLabels { get; init; } = [];

    /// <summary>One per row, or empty for no row labels.</summary>
    public IReadOnlyList<string> RowLabels { get; init; } = [];

    /// <summary>Pixels between neighbouring cells (the web UI's grid margin).</summary>
    public int Spacing { get; init; }

    /// <summary>Recorded as asked: see <see cref="ContactSheetRecord"/>.</summary>
    public string? XAxis { get; init; }

    public string? YAxis { get; init; }
    public string? LabelBy { get; init; }

    /// <summary>
    /// An X/Y plot: column i holds the images whose <paramref name="xLabels"/> entry is the i-th distinct value (in
    /// order of first appearance), rows likewise from <paramref name="yLabels"/>. Either axis may be null (one row or
    /// one column). A combination that no image has stays an empty cell; two images in one cell are refused.
    /// </summary>
    public static ContactSheetRequest ByAxes(
        IReadOnlyList<SDImage> images, IReadOnlyList<string>? xLabels, IReadOnlyList<string>? yLabels,
        IReadOnlyList<string?>? captions = null, int spacing = 0)
    {
        CheckCounts(images, captions);
        if (xLabels is not null && xLabels.Count != images.Count)
            throw new ArgumentException($"{xLabels.Count} X values for {images.Count} images.", nameof(xLabels));
        if (yLabels is not null && yLabels.Count != images.Count)
            throw new ArgumentException($"{yLabels.Count} Y values for {images.Count} images.", nameof(yLabels));
        var columns = Distinct(xLabels);
        var rows = Distinct(yLabels);
        var cells = new List<ContactSheetCell>();
        var taken = new Dictionary<(int, int), int>();
        for (var i = 0; i < images.Count; i++)
        {
            var column = xLabels is null ? 0 : columns.IndexOf(xLabels[i]);
            var row = yLabels is null ? 0 : rows.IndexOf(yLabels[i]);
            if (taken.TryGetValue((column, row), out var first))
                throw new ContactSheetCellTakenException(
                    $"Images {first + 1} and {i + 1} (in input order) both go in the cell " +
                    $"{CellName(xLabels?[i], yLabels?[i])}. " +
                    "Give X and Y values that tell every image apart, or lay them out in Columns.");
            taken[(column, row)] = i;
            cells.Add(new ContactSheetCell(images[i], column, row, captions?[i]));
        }
        return new ContactSheetRequest
        {
            Cells = cells,
            Columns = Math.Max(1, columns.Count),
            Rows = Math.Max(1, rows.Count),
            ColumnLabels = columns,
            RowLabels = rows,
            Spacing = spacing,
        };
    }

    /// <summary>
    /// A plain grid in input order, left to right then top to bottom. Without <paramref name="columns"/> it is as
    /// square as the web UI's grid: round(√n) rows and as many columns as they need.
    /// </summary>
    public static ContactSheetRequest InColumns(
        IReadOnlyList<SDImage> images, int? columns = null, IReadOnlyList<string?>? captions = null, int spacing = 0)
    {
        CheckCounts(images, captions);
        if (columns is < 1) throw new ArgumentException($"Columns must be at least 1, not {columns}.", "Columns");
        var count = images.Count;
        var columnCount = columns ?? (int)Math.Ceiling(count / Math.Max(1.0, Math.Round(Math.Sqrt(count))));
        columnCount = Math.Min(columnCount, count);
        var cells = images.Select((image, i) => new ContactSheetCell(
            image, i % columnCount, i / columnCount, captions?[i])).ToList();
        return new ContactSheetRequest
        {
            Cells = cells,
            Columns = columnCount,
            Rows = (count + columnCount - 1) / columnCount,
            Spacing = spacing,
        };
    }

    private static void CheckCounts(IReadOnlyList<SDImage> images, IReadOnlyList<string?>? captions)
    {
        if (images.Count == 0) throw new ArgumentException("A contact sheet needs at least one image.", nameof(images));
        if (captions is not null && captions.Count != images.Count)
            throw new ArgumentException($"{captions.Count} captions for {images.Count} images.", nameof(captions));
    }

    private static List<string> Distinct(IReadOnlyList<string>? labels) =>
        labels is null ? [] : labels.Distinct(StringComparer.Ordinal).ToList();

    private static string CellName(string? x, string? y) =>
        (x, y) switch
        {
            (not null, not null) => $"'{x}' × '{y}'",
            (not null, null) => $"'{x}'",
            (null, not null) => $"'{y}'",
            _ => "of a one-cell sheet",
        };
}
