using System.Collections;
using System.Globalization;
using System.Management.Automation;
using PSStableDiffusion.Engine;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// A value taken from each image for a grid axis or caption: a property of the SDImage (or else of its record), shown
/// as "Name: value" as the web UI's X/Y plot labels its numeric axes, or a script block of $_, shown as its result.
/// </summary>
internal sealed class ImageSelector
{
    private readonly string? _property;
    private readonly ScriptBlock? _script;

    private ImageSelector(string? property, ScriptBlock? script)
    {
        _property = property;
        _script = script;
    }

    /// <summary>How it was asked, for the sheet's record: the property name, or the script block in braces.</summary>
    public string Description => _property ?? "{" + _script!.ToString() + "}";

    /// <summary>A selector from a parameter value (a string or a script block); null for anything else.</summary>
    public static ImageSelector? From(object value) =>
        (value is PSObject wrapped ? wrapped.BaseObject : value) switch
        {
            string name when !string.IsNullOrWhiteSpace(name) => new ImageSelector(name.Trim(), null),
            ScriptBlock script => new ImageSelector(null, script),
            _ => null,
        };

    /// <exception cref="PropertyNotFoundException">Neither the image nor its record has the property.</exception>
    /// <exception cref="RuntimeException">The script block failed.</exception>
    public string Label(SDImage image)
    {
        if (_script is not null)
            return Format(_script.InvokeWithContext(null, [new PSVariable("_", image)], image));
        var property = PSObject.AsPSObject(image).Properties[_property!]
            ?? PSObject.AsPSObject(image.Record).Properties[_property!];
        if (property is null)
        {
            var names = PSObject.AsPSObject(image).Properties.Select(p => p.Name)
                .Concat(PSObject.AsPSObject(image.Record).Properties.Select(p => p.Name))
                .Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase);
            throw new PropertyNotFoundException(
                $"The images have no property '{_property}'. Name one of: " +
                $"{string.Join(", ", names)}; or pass a script block such as {{ $_.Record.Strength }}.");
        }
        return $"{property.Name}: {Format(property.Value)}";
    }

    /// <summary>Numbers in the invariant culture (7.5, not 7,5), null as "(none)", lists joined with ", ".</summary>
    private static string Format(object? value) => value switch
    {
        null => "(none)",
        PSObject wrapped => Format(wrapped.BaseObject),
        string text => text,
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable items => string.Join(", ", items.Cast<object?>().Select(Format)),
        _ => value.ToString() ?? "",
    };
}
