namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Where everything goes on a contact sheet. Sizes follow the web UI's X/Y plot (modules/images.py,
/// draw_grid_annotations): labels are set at (cell width + cell height) / 25 pixels with half that between lines,
/// row labels get a left margin of 3/4 of a cell width, column labels a top margin of their tallest block plus a line
/// gap above and below. Cells are as large as the largest image; a smaller image is centred in its cell. A caption
/// strip, when any image has a caption, goes under every image.
/// </summary>
public sealed class ContactSheetLayout
{
    private const int MinLabelFontSize = 12;
    private const int MinCaptionFontSize = 10;
    private const int MaxColumnLabelLines = 4;
    private const int MaxCaptionLines = 3;

    private ContactSheetLayout() { }

    public int Columns { get; private init; }
    public int Rows { get; private init; }
    public int CellWidth { get; private init; }
    public int CellHeight { get; private init; }

    /// <summary>Height of the caption strip under each image (0 without captions).</summary>
    public int CaptionHeight { get; private init; }

    /// <summary>Width of the row-label margin on the left (0 without row labels).</summary>
    public int LeftMargin { get; private init; }

    /// <summary>Height of the column-label margin on top (0 without column labels).</summary>
    public int TopMargin { get; private init; }

    public int Spacing { get; private init; }
    public int Width { get; private init; }
    public int Height { get; private init; }
    public int LabelFontSize { get; private init; }
    public int CaptionFontSize { get; private init; }

    /// <summary>Wrapped lines of each column label, row label and caption (captions by cell index of
    /// the request).</summary>
    internal IReadOnlyList<List<string>> ColumnLines { get; private init; } = [];

    internal IReadOnlyList<List<string>> RowLines { get; private init; } = [];
    internal IReadOnlyList<List<string>> CaptionLines { get; private init; } = [];
    internal int LabelGap => LabelFontSize / 2;

    /// <summary>The image area of a cell (without its caption strip).</summary>
    public PixelRect Cell(int column, int row) =>
        new(
            LeftMargin + column * (CellWidth + Spacing),
            TopMargin + row * (CellHeight + CaptionHeight + Spacing), CellWidth, CellHeight);

    /// <summary>Where an image of the given size lands in its cell: centred, rounded down.</summary>
    public PixelRect ImageArea(int column, int row, int width, int height)
    {
        var cell = Cell(column, row);
        return new(cell.X + (CellWidth - width) / 2, cell.Y + (CellHeight - height) / 2, width, height);
    }

    public PixelRect CaptionArea(int column, int row)
    {
        var cell = Cell(column, row);
        return new(cell.X, cell.Bottom, CellWidth, CaptionHeight);
    }

    public PixelRect ColumnLabelArea(int column) => new(Cell(column, 0).X, 0, CellWidth, TopMargin);

    public PixelRect RowLabelArea(int row) => new(0, Cell(0, row).Y, LeftMargin, CellHeight);

    /// <summary>Measures a request: cell size, margins, wrapped text. Throws when the sheet would be
    /// too large.</summary>
    public static ContactSheetLayout Measure(ContactSheetRequest request)
    {
        int cellWidth = request.Cells.Max(c => c.Image.Width), cellHeight = request.Cells.Max(c => c.Image.Height);
        var labelSize = Math.Max(MinLabelFontSize, (cellWidth + cellHeight) / 25);
        var captionSize = Math.Max(MinCaptionFontSize, (cellWidth + cellHeight) / 40);
        var gap = labelSize / 2;
        var hasRowLabels = request.RowLabels.Any(label => !string.IsNullOrWhiteSpace(label));
        var hasColumnLabels = request.ColumnLabels.Any(label => !string.IsNullOrWhiteSpace(label));
        var hasCaptions = request.Cells.Any(c => !string.IsNullOrWhiteSpace(c.Caption));
        var leftMargin = hasRowLabels ? Math.Max(cellWidth * 3 / 4, 6 * labelSize) : 0;

        using var labelFont = LabelText.CreateFont(labelSize);
        using var captionFont = LabelText.CreateFont(captionSize);
        var labelLine = LabelText.LineHeight(labelFont);
        var columnLines = request.ColumnLabels.Select(l => LabelText.Wrap(
            l, labelFont, cellWidth - gap, MaxColumnLabelLines)).ToList();
        var rowLines = request.RowLabels.Select(l => LabelText.Wrap(
            l, labelFont, leftMargin - 2 * gap, Math.Max(1, cellHeight / labelLine))).ToList();
        var captionLines = request.Cells.Select(c => string.IsNullOrWhiteSpace(c.Caption) ? [] : LabelText.Wrap(
            c.Caption, captionFont, cellWidth - captionSize / 2, MaxCaptionLines)).ToList();

        var topMargin = hasColumnLabels ? columnLines.Max(lines => lines.Count) * labelLine + 2 * gap : 0;
        var captionHeight = hasCaptions
            ? captionLines.Max(lines => lines.Count) * LabelText.LineHeight(captionFont) + captionSize / 2 : 0;
        var spacing = request.Spacing;
        long width = leftMargin + (long)request.Columns * cellWidth + (request.Columns - 1L) * spacing;
        long height = topMargin + (long)request.Rows * (cellHeight + captionHeight) + (request.Rows - 1L) * spacing;
        CheckSize(width, height, request.Cells.Count);
        return new ContactSheetLayout
        {
            Columns = request.Columns, Rows = request.Rows, CellWidth = cellWidth, CellHeight = cellHeight,
            CaptionHeight = captionHeight, LeftMargin = leftMargin, TopMargin = topMargin, Spacing = spacing,
            Width = (int)width, Height = (int)height, LabelFontSize = labelSize, CaptionFontSize = captionSize,
            ColumnLines = columnLines, RowLines = rowLines, CaptionLines = captionLines,
        };
    }

    private static void CheckSize(long width, long height, int imageCount)
    {
        if (width > ImageLimits.MaxDimension
            || height > ImageLimits.MaxDimension || width * height > ImageLimits.MaxPixels)
            throw new ContactSheetTooLargeException(
                $"A contact sheet of these {imageCount} images would be {width}x{height} pixels, over the limit of " +
                $"{ImageLimits.MaxDimension} per side and {ImageLimits.MaxPixels} " +
                $"in all. Use fewer images, or smaller copies of them.");
    }
}
