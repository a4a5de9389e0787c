using PSStableDiffusion.Engine.Imaging;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Imaging;

/// <summary>
/// Contact sheets: the layout (sheet size, the cell each image lands in, checked by its pixels), the web UI's label
/// sizes, and the rendered text (label and caption areas carry ink, differ between different texts and are the same
/// for the same text). Member pixels are copied exactly, so cells are compared byte for byte.
/// </summary>
public class ContactSheetTests
{
    // Each test image is noise from its own seed: any misplaced or resampled pixel shows as a difference.
    private static SDImage Noise(int width, int height, int seed, long recordSeed = 0, string scheduler = "Euler")
    {
        var pixels = new byte[width * height * 3];
        new Random(seed).NextBytes(pixels);
        var record = new GenerationRecord { Seed = recordSeed, Scheduler = scheduler, Prompt = $"image {seed}", Width = width, Height = height };
        return new SDImage(width, height, pixels, record);
    }

    private static byte[] Crop(SDImage sheet, PixelRect area)
    {
        var result = new byte[area.Width * area.Height * 3];
        for (var y = 0; y < area.Height; y++)
            Buffer.BlockCopy(sheet.Pixels, ((area.Y + y) * sheet.Width + area.X) * 3, result, y * area.Width * 3, area.Width * 3);
        return result;
    }

    private static int InkPixels(SDImage sheet, PixelRect area) =>
        CountPixels(sheet, area, (r, g, b) => r < 128 && g < 128 && b < 128);

    private static int CountPixels(SDImage sheet, PixelRect area, Func<byte, byte, byte, bool> predicate)
    {
        var count = 0;
        for (var y = area.Y; y < area.Bottom; y++)
            for (var x = area.X; x < area.Right; x++)
            {
                var i = (y * sheet.Width + x) * 3;
                if (predicate(sheet.Pixels[i], sheet.Pixels[i + 1], sheet.Pixels[i + 2])) count++;
            }
        return count;
    }

    private static bool IsFilled(SDImage sheet, PixelRect area, (byte R, byte G, byte B) color) =>
        CountPixels(sheet, area, (r, g, b) => (r, g, b) == color) == area.Width * area.Height;

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 2, 1)]
    [InlineData(4, 2, 2)]
    [InlineData(5, 3, 2)]
    [InlineData(7, 3, 3)]
    [InlineData(10, 4, 3)]
    public void APlainGridIsAsSquareAsTheWebUIs(int count, int columns, int rows)
    {
        // modules/images.py image_grid: rows = round(sqrt(n)), columns = ceil(n / rows).
        var images = Enumerable.Range(0, count).Select(i => Noise(4, 4, i)).ToList();
        var request = ContactSheetRequest.InColumns(images);
        Assert.Equal((columns, rows), (request.Columns, request.Rows));
    }

    [Fact]
    public void ColumnsPlaceImagesLeftToRightThenTopToBottom()
    {
        var images = Enumerable.Range(0, 5).Select(i => Noise(16, 12, i)).ToList();
        var sheet = ContactSheet.Render(ContactSheetRequest.InColumns(images, columns: 3));
        var layout = ContactSheetLayout.Measure(ContactSheetRequest.InColumns(images, columns: 3));

        Assert.Equal((48, 24), (sheet.Width, sheet.Height));
        for (var i = 0; i < images.Count; i++)
            Assert.Equal(images[i].Pixels, Crop(sheet, new PixelRect(16 * (i % 3), 12 * (i / 3), 16, 12)));
        Assert.True(IsFilled(sheet, layout.Cell(2, 1), ContactSheet.EmptyCellColor), "the sixth cell has no image");
        var members = sheet.Record.ContactSheet!.Members;
        Assert.Equal([(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)], members.Select(m => (m.Column, m.Row)));
        Assert.Equal(new PixelRect(16, 12, 16, 12), new PixelRect(members[4].X, members[4].Y, members[4].Width, members[4].Height));
    }

    [Fact]
    public void SpacingSeparatesCells()
    {
        var images = Enumerable.Range(0, 4).Select(i => Noise(10, 10, i)).ToList();
        var sheet = ContactSheet.Render(ContactSheetRequest.InColumns(images, columns: 2, spacing: 3));
        Assert.Equal((23, 23), (sheet.Width, sheet.Height));
        Assert.Equal(images[3].Pixels, Crop(sheet, new PixelRect(13, 13, 10, 10)));
        Assert.True(IsFilled(sheet, new PixelRect(10, 0, 3, 23), ContactSheet.BackgroundColor));
    }

    [Fact]
    public void AxesPutEachImageInTheCellOfItsValuesInOrderOfFirstAppearance()
    {
        var images = new[] { Noise(20, 20, 1), Noise(20, 20, 2), Noise(20, 20, 3) };
        var request = ContactSheetRequest.ByAxes(images, ["Seed: 2", "Seed: 1", "Seed: 2"], ["Euler", "Euler", "DDIM"]);
        var layout = ContactSheetLayout.Measure(request);
        var sheet = ContactSheet.Render(request);

        Assert.Equal(["Seed: 2", "Seed: 1"], request.ColumnLabels);
        Assert.Equal(["Euler", "DDIM"], request.RowLabels);
        Assert.Equal(images[0].Pixels, Crop(sheet, layout.Cell(0, 0)));
        Assert.Equal(images[1].Pixels, Crop(sheet, layout.Cell(1, 0)));
        Assert.Equal(images[2].Pixels, Crop(sheet, layout.Cell(0, 1)));
        Assert.True(IsFilled(sheet, layout.Cell(1, 1), ContactSheet.EmptyCellColor), "no image is Seed 1 with DDIM");
        Assert.Equal((layout.LeftMargin + 40, layout.TopMargin + 40), (sheet.Width, sheet.Height));
        Assert.True(layout.LeftMargin > 0 && layout.TopMargin > 0);
    }

    [Fact]
    public void TwoImagesInOneCellAreRefusedNamingBoth()
    {
        var images = new[] { Noise(8, 8, 1), Noise(8, 8, 2), Noise(8, 8, 3) };
        var error = Assert.Throws<ContactSheetCellTakenException>(() => ContactSheetRequest.ByAxes(images, ["a", "b", "a"], null));
        Assert.Contains("Images 1 and 3", error.Message);
        Assert.Contains("'a'", error.Message);
    }

    [Fact]
    public void LabelsAreSizedAsTheWebUIsGrid()
    {
        // draw_grid_annotations: font (w + h) / 25, line spacing half of it, row labels in 3/4 of a cell width.
        var images = new[] { Noise(512, 512, 1), Noise(512, 512, 2) };
        var layout = ContactSheetLayout.Measure(ContactSheetRequest.ByAxes(images, ["Seed: 1", "Seed: 2"], ["Euler", "Euler"]));
        Assert.Equal(40, layout.LabelFontSize);
        Assert.Equal(384, layout.LeftMargin);
        using var font = LabelText.CreateFont(40);
        Assert.Equal(LabelText.LineHeight(font) + 2 * 20, layout.TopMargin);
        Assert.Equal((384 + 1024, layout.TopMargin + 512), (layout.Width, layout.Height));
    }

    [Fact]
    public void LabelsAreDrawnInTheirMarginsAndDifferByText()
    {
        var images = new[] { Noise(64, 64, 1), Noise(64, 64, 2), Noise(64, 64, 3), Noise(64, 64, 4) };
        var request = ContactSheetRequest.ByAxes(images, ["7", "42", "7", "42"], ["Euler", "Euler", "DDIM", "DDIM"]);
        var layout = ContactSheetLayout.Measure(request);
        var sheet = ContactSheet.Render(request);

        foreach (var area in new[] { layout.ColumnLabelArea(0), layout.ColumnLabelArea(1), layout.RowLabelArea(0), layout.RowLabelArea(1) })
            Assert.True(InkPixels(sheet, area) > 10, $"no text in {area}");
        Assert.NotEqual(Crop(sheet, layout.ColumnLabelArea(0)), Crop(sheet, layout.ColumnLabelArea(1)));
        Assert.NotEqual(Crop(sheet, layout.RowLabelArea(0)), Crop(sheet, layout.RowLabelArea(1)));
        // The corner above the row labels and left of the column labels stays blank.
        Assert.True(IsFilled(sheet, new PixelRect(0, 0, layout.LeftMargin, layout.TopMargin), ContactSheet.BackgroundColor));
        for (var i = 0; i < 4; i++) Assert.Equal(images[i].Pixels, Crop(sheet, layout.Cell(i % 2, i / 2)));
    }

    [Fact]
    public void TheSameTextGivesTheSamePixels()
    {
        var images = new[] { Noise(64, 64, 1), Noise(64, 64, 2) };
        var request = ContactSheetRequest.ByAxes(images, ["Seed: 5", "Seed: 6"], null);
        var first = ContactSheet.Render(request);
        var second = ContactSheet.Render(ContactSheetRequest.ByAxes([images[1], images[0]], ["Seed: 9", "Seed: 5"], null));
        var layout = ContactSheetLayout.Measure(request);
        Assert.Equal(Crop(first, layout.ColumnLabelArea(0)), Crop(second, layout.ColumnLabelArea(1)));
    }

    [Fact]
    public void CaptionsGoUnderTheirImagesOnly()
    {
        var images = new[] { Noise(64, 48, 1), Noise(64, 48, 2), Noise(64, 48, 3) };
        var request = ContactSheetRequest.InColumns(images, columns: 3, captions: ["seed 1", null, "a longer caption that wraps"]);
        var layout = ContactSheetLayout.Measure(request);
        var sheet = ContactSheet.Render(request);

        Assert.True(layout.CaptionHeight > 0);
        Assert.Equal((192, 48 + layout.CaptionHeight), (sheet.Width, sheet.Height));
        Assert.True(InkPixels(sheet, layout.CaptionArea(0, 0)) > 10);
        Assert.True(IsFilled(sheet, layout.CaptionArea(1, 0), ContactSheet.BackgroundColor), "the second image has no caption");
        Assert.True(InkPixels(sheet, layout.CaptionArea(2, 0)) > InkPixels(sheet, layout.CaptionArea(0, 0)));
        for (var i = 0; i < 3; i++) Assert.Equal(images[i].Pixels, Crop(sheet, layout.Cell(i, 0)));
        Assert.Equal("seed 1", sheet.Record.ContactSheet!.Members[0].Caption);
        Assert.Null(sheet.Record.ContactSheet.Members[1].Caption);
    }

    [Fact]
    public void SmallerImagesAreCentredInCellsOfTheLargestSize()
    {
        var images = new[] { Noise(30, 20, 1), Noise(10, 8, 2) };
        var sheet = ContactSheet.Render(ContactSheetRequest.InColumns(images, columns: 2));
        Assert.Equal((60, 20), (sheet.Width, sheet.Height));
        Assert.Equal(images[1].Pixels, Crop(sheet, new PixelRect(30 + 10, 6, 10, 8)));
        var member = sheet.Record.ContactSheet!.Members[1];
        Assert.Equal((40, 6, 10, 8), (member.X, member.Y, member.Width, member.Height));
    }

    [Fact]
    public void LongTextWrapsWithinItsWidthAndIsCutWithAnEllipsis()
    {
        using var font = LabelText.CreateFont(20);
        var lines = LabelText.Wrap("a photograph of an astronaut riding a horse on the moon", font, 150, 3);
        Assert.Equal(3, lines.Count);
        Assert.All(lines, line => Assert.True(font.MeasureText(line) <= 150, line));
        Assert.EndsWith("…", lines[^1]);
        var broken = LabelText.Wrap("supercalifragilisticexpialidocious", font, 60, 10);
        Assert.True(broken.Count > 1);
        Assert.Equal("supercalifragilisticexpialidocious", string.Concat(broken));
    }

    [Fact]
    public void ANameValueLabelThatDoesNotFitBreaksAfterTheName()
    {
        using var font = LabelText.CreateFont(20);
        Assert.Equal(["Scheduler:", "Euler a"], LabelText.Wrap("Scheduler: Euler a", font, 120, 4));
        Assert.Equal(["Seed: 1"], LabelText.Wrap("Seed: 1", font, 120, 4));
    }

    [Fact]
    public void TheRecordListsEveryMemberAndSurvivesThePng()
    {
        var images = new[] { Noise(16, 16, 1, recordSeed: 11, scheduler: "DDIM"), Noise(16, 16, 2, recordSeed: 12, scheduler: "DDIM") };
        var request = ContactSheetRequest.ByAxes(images, ["Seed: 11", "Seed: 12"], null, ["one", "two"]);
        var sheet = ContactSheet.Render(new ContactSheetRequest
        {
            Cells = request.Cells, Columns = request.Columns, Rows = request.Rows, ColumnLabels = request.ColumnLabels,
            XAxis = "Seed", LabelBy = "{ $_.Prompt }",
        });
        var read = ImageCodec.Decode(ImageCodec.EncodePng(sheet));

        Assert.Equal(sheet.Pixels, read.Pixels);
        var record = read.Record.ContactSheet!;
        Assert.Equal(("Seed", null, "{ $_.Prompt }"), (record.XAxis, record.YAxis, record.LabelBy));
        Assert.Equal(["Seed: 11", "Seed: 12"], record.ColumnLabels);
        Assert.Equal([11L, 12L], record.Members.Select(m => m.Record.Seed));
        Assert.Equal(["image 1", "image 2"], record.Members.Select(m => m.Record.Prompt));
        Assert.Equal((sheet.Width, sheet.Height), (read.Record.Width, read.Record.Height));
    }

    [Fact]
    public void ASheetOverTheImageLimitsIsRefusedBeforeDrawing()
    {
        var image = new SDImage(4096, 4096, new byte[4096 * 4096 * 3]);
        var request = ContactSheetRequest.InColumns([image, image, image, image, image], columns: 5);
        var error = Assert.Throws<ContactSheetTooLargeException>(() => ContactSheet.Render(request));
        Assert.Contains("20480x4096", error.Message);
    }
}
