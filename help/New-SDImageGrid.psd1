@{
    Synopsis    = 'Puts images on one contact sheet: an X/Y plot with axis labels, or a plain grid, with optional captions.'

    Description = @(
        @'
New-SDImageGrid collects the images from the pipeline and draws them on one sheet, so that a sweep (seeds against
schedulers, steps against guidance) can be judged at a glance. It writes one SDImage: save it with Save-SDImage. Its
record lists every member image (its cell, the rectangle it covers on the sheet, its caption and its full generation
record) in Record.ContactSheet, so Import-SDImage on the saved PNG tells what each cell is and how to make it again.
'@
        @'
With -X and/or -Y the sheet is an X/Y plot, as in AUTOMATIC1111's X/Y/Z plot script: each distinct value of -X is a
column, each distinct value of -Y a row, in the order the values first come in. -X and -Y are a property name of the
images (Seed, Steps, GuidanceScale, Scheduler, Prompt, Model...) or, failing that, of their records (Strength, Eta...),
labelled "Name: value"; or a script block that gets each image as $_ and is labelled with its result, such as
{ $_.Record.Strength } or { '{0} steps' -f $_.Steps }. A combination of values that no image has stays an empty grey
cell. Two images with the same values on both axes are the error GridCellTaken: choose axes that tell every image apart,
or use -Columns.
'@
        @'
Without -X and -Y the images go left to right, then top to bottom: in -Columns columns, or, without -Columns, in
round(sqrt(n)) rows as the web UI's grid does. -Label adds a caption under each image (a property name or a script
block, as for -X).
'@
        @'
Sizes follow the web UI: cells are as large as the largest image (a smaller one is centred), labels are set at
(cell width + cell height) / 25 pixels (40 px for 512x512 images, 12 px at least), row labels get a margin of 3/4 of a
cell width, column labels a margin as tall as their tallest label. Long labels wrap at spaces; column labels are cut
after four lines and captions after three, with an ellipsis. Member pixels are copied exactly, never resampled.
'@
        @'
Text is black on white in DejaVu Sans, which the module bundles (Data/fonts, with its licence), so a sheet looks the
same on every machine, one with no fonts installed included. Characters outside that font (most CJK, emoji) show as
boxes.
'@
    )

    Parameters  = @{
        Image   = 'The images to put on the sheet, usually from the pipeline: SDImages from New-SDImage, Invoke-SDInpaint, Resize-SDUpscale or Import-SDImage, images that came back from a job or remote session, or PNG paths and files.'
        X       = 'What tells the columns apart: a property name (such as Seed) or a script block of $_ (such as { $_.Steps }). Each distinct value is a labelled column.'
        Y       = 'What tells the rows apart: a property name (such as Scheduler) or a script block of $_. Each distinct value is a labelled row.'
        Columns = 'Lays the images out in this many columns, in the order they come in, without axis labels.'
        Label   = 'A caption under each image: a property name (shown as "Name: value") or a script block of $_ (shown as its result).'
        Spacing = @{ Description = 'Pixels of white between neighbouring cells, as the web UI''s grid margins.'; DefaultValue = '0' }
    }

    Inputs      = @(
        @{ Type = 'PSStableDiffusion.Engine.SDImage'; Description = 'The images to put on the sheet.' }
    )

    Outputs     = @(
        @{ Type = 'PSStableDiffusion.Engine.SDImage'; Description = 'One contact sheet. Record.ContactSheet lists its axes, labels and members.' }
    )

    Notes       = @(
        @'
The sheet is made once all images have come in, and they are kept in memory until then. A sheet larger than
16384 pixels a side or 8192x8192 pixels in all is the terminating error GridTooLarge (LimitsExceeded), as is one whose
record would not fit in its PNG (about 500 members); make several sheets, or resize the images first. Other errors
(terminating): GridCellTaken (InvalidArgument), GridPropertyNotFound (ObjectNotFound, the message lists the properties
there are), GridScriptBlockFailed (InvalidOperation), InvalidGridSelector (a value that is neither a name nor a script
block); NoImages (non-terminating) when the pipeline was empty.
'@
    )

    Examples    = @(
        @{
            Title   = 'Seeds against schedulers'
            Code    = @'
$images = foreach ($scheduler in 'Euler a', 'DPM++ 2M Karras', 'DDIM') { foreach ($seed in 1..3) {
    New-SDImage 'a lighthouse at dawn' -Model ./sd21 -Scheduler $scheduler -Seed $seed
} }
$images | New-SDImageGrid -X Seed -Y Scheduler | Save-SDImage ./sweep.png
'@
            Remarks = 'Three columns labelled "Seed: 1" to "Seed: 3" and three rows labelled "Scheduler: Euler a" and so on.'
        }
        @{
            Title   = 'Steps against guidance, with script-block labels'
            Code    = @'
$images = foreach ($steps in 10, 20, 30) { foreach ($cfg in 4, 7.5, 11) {
    New-SDImage 'a red fox in snow' -Model ./sd21 -Seed 42 -Steps $steps -GuidanceScale $cfg
} }
$images | New-SDImageGrid -X { "$($_.Steps) steps" } -Y { "CFG $($_.GuidanceScale)" } | Save-SDImage ./steps-cfg.png
'@
            Remarks = 'Labels show the script blocks'' results: "10 steps", "CFG 7.5".'
        }
        @{
            Title   = 'A plain grid of saved images with captions'
            Code    = 'Get-ChildItem ./out/*.png | Import-SDImage | New-SDImageGrid -Columns 4 -Label Seed -Spacing 8 | Save-SDImage ./contact.png'
            Remarks = 'Four images a row, each captioned "Seed: <seed>", 8 pixels apart.'
        }
        @{
            Title   = 'Find a cell of a saved sheet'
            Code    = @'
$sheet = Import-SDImage ./sweep.png
$sheet.Record.ContactSheet.Members | Format-Table Column, Row, X, Y, { $_.Record.Seed }, { $_.Record.Scheduler }
'@
            Remarks = 'Each member''s cell, its place on the sheet and its own generation record.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Save-SDImage'
        'Import-SDImage'
        'about_PSStableDiffusion'
    )
}
