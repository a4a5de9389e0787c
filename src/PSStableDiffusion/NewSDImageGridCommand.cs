using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Puts piped images on one contact sheet: an X/Y plot whose columns and rows are told apart by a property or a
/// script block (labelled with their values), or a plain grid. The sheet is one SDImage whose record lists its members.
/// </summary>
[Cmdlet(VerbsCommon.New, "SDImageGrid", DefaultParameterSetName = AxesSet)]
[OutputType(typeof(SDImage))]
public sealed class NewSDImageGridCommand : SDCmdletBase
{
    #region Members

    private const string AxesSet = "Axes";
    private const string ColumnsSet = "Columns";

    private readonly List<SDImage> _images = [];
    private readonly List<string> _xLabels = [];
    private readonly List<string> _yLabels = [];
    private readonly List<string?> _captions = [];
    private ImageSelector? _x, _y, _label;

    #endregion

    #region Parameters

    /// <summary>The images, usually piped from New-SDImage or Import-SDImage (SDImages, deserialized ones, paths
    /// or files).</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    [SDImageTransformation]
    [ValidateNotNullOrEmpty]
    public SDImage[] Image { get; set; } = [];

    /// <summary>What the columns show: a property name of the images (or of their records) or a script
    /// block of $_.</summary>
    [Parameter(Position = 0, ParameterSetName = AxesSet)]
    [ValidateNotNull]
    public object? X { get; set; }

    /// <summary>What the rows show: a property name or a script block of $_.</summary>
    [Parameter(Position = 1, ParameterSetName = AxesSet)]
    [ValidateNotNull]
    public object? Y { get; set; }

    /// <summary>A plain grid of this many columns, in input order.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ColumnsSet)]
    [ValidateRange(1, 1024)]
    public int Columns { get; set; }

    /// <summary>A caption under each image: a property name or a script block of $_.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Label { get; set; }

    /// <summary>Pixels between cells.</summary>
    [Parameter]
    [ValidateRange(0, 256)]
    public int Spacing { get; set; }

    #endregion

    #region Overrides

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        _x = Selector(X, nameof(X));
        _y = Selector(Y, nameof(Y));
        _label = Selector(Label, nameof(Label));
    }

    protected override void ProcessRecord()
    {
        foreach (var image in Image)
        {
            Cancellation.ThrowIfCancellationRequested();
            _images.Add(image);
            if (_x is not null) _xLabels.Add(Evaluate(_x, image));
            if (_y is not null) _yLabels.Add(Evaluate(_y, image));
            _captions.Add(_label is null ? null : Evaluate(_label, image));
        }
    }

    protected override void EndProcessing()
    {
        if (_images.Count == 0)
        {
            WriteError(new ErrorRecord(
                new ArgumentException("No images came in: New-SDImageGrid needs at least one."), "NoImages",
                ErrorCategory.InvalidArgument, null));
            return;
        }
        try
        {
            var request = BuildRequest();
            var layout = ContactSheetLayout.Measure(request);
            WriteVerbose(
                $"Contact sheet: {_images.Count} images in {layout.Columns} columns x " +
                $"{layout.Rows} rows of {layout.CellWidth}x{layout.CellHeight} cells, " +
                $"{layout.Width}x{layout.Height} pixels (labels " +
                $"{layout.LabelFontSize} px, captions {layout.CaptionFontSize} px).");
            WriteObject(ContactSheet.Render(request));
        }
        catch (ContactSheetCellTakenException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "GridCellTaken", ErrorCategory.InvalidArgument, null));
        }
        catch (ContactSheetTooLargeException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "GridTooLarge", ErrorCategory.LimitsExceeded, null));
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "GridFailed", null));
        }
    }

    #endregion

    #region Private methods

    private ContactSheetRequest BuildRequest()
    {
        var request = ParameterSetName == ColumnsSet || (_x is null && _y is null)
            ? ContactSheetRequest.InColumns(
                _images, ParameterSetName == ColumnsSet ? Columns : null, _captions, Spacing)
            : ContactSheetRequest.ByAxes(
                _images, _x is null ? null : _xLabels, _y is null ? null : _yLabels, _captions, Spacing);
        return new ContactSheetRequest
        {
            Cells = request.Cells, Columns = request.Columns, Rows = request.Rows, Spacing = request.Spacing,
            ColumnLabels = request.ColumnLabels, RowLabels = request.RowLabels,
            XAxis = _x?.Description, YAxis = _y?.Description, LabelBy = _label?.Description,
        };
    }

    private ImageSelector? Selector(object? value, string parameter)
    {
        if (value is null) return null;
        var selector = ImageSelector.From(value);
        if (selector is null)
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException(
                    $"-{parameter} takes a property name (such as Seed) or a script " +
                    $"block (such as {{ $_.Steps }}), not a {value.GetType().Name}."),
                "InvalidGridSelector", ErrorCategory.InvalidArgument, value));
        return selector;
    }

    private string Evaluate(ImageSelector selector, SDImage image)
    {
        try
        {
            return selector.Label(image);
        }
        catch (PropertyNotFoundException e)
        {
            ThrowTerminatingError(new ErrorRecord(
                e, "GridPropertyNotFound", ErrorCategory.ObjectNotFound, selector.Description));
        }
        catch (RuntimeException e)
        {
            ThrowTerminatingError(new ErrorRecord(
                new InvalidOperationException(
                    $"The script block {selector.Description} failed on '{image}': {e.Message}", e),
                "GridScriptBlockFailed", ErrorCategory.InvalidOperation, selector.Description));
        }
        return "";
    }

    #endregion
}
