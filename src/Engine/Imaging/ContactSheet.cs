using System.Runtime.InteropServices;
using SkiaSharp;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Contact sheets: many images on one, in a plain grid or as an X/Y plot with axis labels (the web UI's X/Y/Z plot is
/// the model), with optional captions under each image. The result is an <see cref="SDImage"/> whose record lists
/// every member (<see cref="GenerationRecord.ContactSheet"/>). Member pixels are copied exactly, never resampled;
/// text is black on white in the bundled font (<see cref="LabelText"/>).
/// </summary>
public static class ContactSheet
{
    /// <summary>Fill of a cell that no image has (a combination of the axes that was not made).</summary>
    public static readonly (byte R, byte G, byte B) EmptyCellColor = (232, 232, 232);

    public static readonly (byte R, byte G, byte B) BackgroundColor = (255, 255, 255);

    /// <summary>Lays out and draws a sheet; see <see cref="ContactSheetLayout"/> for where things go.</summary>
    /// <exception cref="ArgumentException">Cells outside the grid, two images in one cell, or label counts that do
    /// not match.</exception>
    /// <exception cref="ContactSheetTooLargeException">The sheet or its record would exceed the
    /// image limits.</exception>
    public static SDImage Render(ContactSheetRequest request)
    {
        Check(request);
        var layout = ContactSheetLayout.Measure(request);
        var record = BuildRecord(request, layout);
        var rgb = DrawText(request, layout);
        foreach (var cell in request.Cells)
            Blit(
                cell.Image, layout.ImageArea(cell.Column, cell.Row, cell.Image.Width, cell.Image.Height),
                rgb, layout.Width);
        return new SDImage(layout.Width, layout.Height, rgb, record);
    }

    private static void Check(ContactSheetRequest request)
    {
        if (request.Cells.Count == 0)
            throw new ArgumentException("A contact sheet needs at least one image.", nameof(request));
        if (request.Columns < 1 || request.Rows < 1)
            throw new ArgumentException(
                $"A contact sheet needs at least one column and row, not {request.Columns}x{request.Rows}.",
                nameof(request));
        if (request.Spacing < 0)
            throw new ArgumentException($"Spacing must be 0 or more, not {request.Spacing}.", "Spacing");
        if (request.ColumnLabels.Count is var c && c != 0 && c != request.Columns)
            throw new ArgumentException($"{c} column labels for {request.Columns} columns.", nameof(request));
        if (request.RowLabels.Count is var r && r != 0 && r != request.Rows)
            throw new ArgumentException($"{r} row labels for {request.Rows} rows.", nameof(request));
        var taken = new HashSet<(int, int)>();
        foreach (var cell in request.Cells)
        {
            if (cell.Column < 0 || cell.Column >= request.Columns || cell.Row < 0 || cell.Row >= request.Rows)
                throw new ArgumentException(
                    $"Cell ({cell.Column}, {cell.Row}) is outside a {request.Columns}x{request.Rows} grid.",
                    nameof(request));
            if (!taken.Add((cell.Column, cell.Row)))
                throw new ContactSheetCellTakenException(
                    $"Two images go in the cell at column {cell.Column + 1}, row {cell.Row + 1}.");
        }
    }

    /// <summary>White sheet, grey empty cells and all text, drawn by Skia; returned as RGB bytes.</summary>
    private static byte[] DrawText(ContactSheetRequest request, ContactSheetLayout layout)
    {
        var info = new SKImageInfo(layout.Width, layout.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var bitmap = new SKBitmap(info);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor(BackgroundColor.R, BackgroundColor.G, BackgroundColor.B));
            FillEmptyCells(canvas, request, layout);
            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            using var labelFont = LabelText.CreateFont(layout.LabelFontSize);
            using var captionFont = LabelText.CreateFont(layout.CaptionFontSize);
            for (var column = 0; column < layout.ColumnLines.Count; column++)
                DrawBlock(canvas, layout.ColumnLines[column], layout.ColumnLabelArea(column), labelFont, paint);
            for (var row = 0; row < layout.RowLines.Count; row++)
                DrawBlock(canvas, layout.RowLines[row], layout.RowLabelArea(row), labelFont, paint);
            for (var i = 0; i < request.Cells.Count; i++)
                DrawBlock(
                    canvas, layout.CaptionLines[i], layout.CaptionArea(request.Cells[i].Column, request.Cells[i].Row),
                    captionFont, paint);
        }
        return ToRgb(bitmap);
    }

    private static void FillEmptyCells(SKCanvas canvas, ContactSheetRequest request, ContactSheetLayout layout)
    {
        var taken = request.Cells.Select(c => (c.Column, c.Row)).ToHashSet();
        using var fill = new SKPaint { Color = new SKColor(EmptyCellColor.R, EmptyCellColor.G, EmptyCellColor.B) };
        for (var row = 0; row < layout.Rows; row++)
            for (var column = 0; column < layout.Columns; column++)
            {
                if (taken.Contains((column, row))) continue;
                var cell = layout.Cell(column, row);
                canvas.DrawRect(cell.X, cell.Y, cell.Width, cell.Height, fill);
            }
    }

    /// <summary>Lines centred horizontally in <paramref name="area"/>, the block centred vertically.</summary>
    private static void DrawBlock(
        SKCanvas canvas, IReadOnlyList<string> lines, PixelRect area, SKFont font, SKPaint paint)
    {
        if (lines.Count == 0) return;
        var lineHeight = LabelText.LineHeight(font);
        var top = area.Y + (area.Height - lines.Count * lineHeight) / 2f;
        // Baseline of the first line: the ascent (negative in Skia) below the top, plus half the leading.
        var baseline = top - font.Metrics.Ascent + (lineHeight - (font.Metrics.Descent - font.Metrics.Ascent)) / 2f;
        canvas.Save();
        canvas.ClipRect(new SKRect(area.X, area.Y, area.Right, area.Bottom));
        foreach (var line in lines)
        {
            canvas.DrawText(line, area.X + area.Width / 2f, MathF.Round(baseline), SKTextAlign.Center, font, paint);
            baseline += lineHeight;
        }
        canvas.Restore();
    }

    private static byte[] ToRgb(SKBitmap bitmap)
    {
        var rgba = bitmap.GetPixelSpan();
        var rgb = new byte[(long)bitmap.Width * bitmap.Height * 3];
        for (long i = 0, j = 0; i < rgb.LongLength; i += 3, j += 4)
        {
            // Opaque everywhere (the canvas was cleared to white), so premultiplied equals straight.
            rgb[i] = rgba[(int)j];
            rgb[i + 1] = rgba[(int)j + 1];
            rgb[i + 2] = rgba[(int)j + 2];
        }
        return rgb;
    }

    private static void Blit(SDImage image, PixelRect area, byte[] sheet, int sheetWidth)
    {
        var rowBytes = image.Width * 3;
        for (var y = 0; y < image.Height; y++)
            Buffer.BlockCopy(image.Pixels, y * rowBytes, sheet, ((area.Y + y) * sheetWidth + area.X) * 3, rowBytes);
    }

    private static GenerationRecord BuildRecord(ContactSheetRequest request, ContactSheetLayout layout)
    {
        var sheet = new ContactSheetRecord
        {
            Columns = layout.Columns, Rows = layout.Rows, XAxis = request.XAxis, YAxis = request.YAxis,
            LabelBy = request.LabelBy,
            ColumnLabels = [.. request.ColumnLabels], RowLabels = [.. request.RowLabels],
        };
        foreach (var cell in request.Cells)
        {
            var area = layout.ImageArea(cell.Column, cell.Row, cell.Image.Width, cell.Image.Height);
            sheet.Members.Add(new ContactSheetMember
            {
                Column = cell.Column, Row = cell.Row, X = area.X, Y = area.Y, Width = area.Width, Height = area.Height,
                Caption = string.IsNullOrWhiteSpace(cell.Caption) ? null : cell.Caption,
                SourcePath = cell.Image.SourcePath,
                Record = cell.Image.Record.Clone(),
            });
        }
        var record = new GenerationRecord
        {
            Width = layout.Width, Height = layout.Height, ContactSheet = sheet,
            ModuleVersion = Pipelines.ImageGeneration.ModuleVersion, CreatedUtc = DateTimeOffset.UtcNow,
        };
        var jsonBytes = System.Text.Encoding.UTF8.GetByteCount(record.ToJson());
        if (jsonBytes > ImageLimits.MaxTextBytes)
            throw new ContactSheetTooLargeException(
                $"The record of a contact sheet of {request.Cells.Count} images would take {jsonBytes} bytes, over " +
                $"the {ImageLimits.MaxTextBytes} bytes a PNG text chunk may hold here. Make several smaller sheets.");
        return record;
    }
}
