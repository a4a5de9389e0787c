@{
    Synopsis    = 'Saves images as PNG files that carry their generation record.'

    Description = @(
        @'
Save-SDImage writes each SDImage from the pipeline to a PNG file and writes the file's FileInfo. The PNG holds the
image's generation record twice: as AUTOMATIC1111's "parameters" text (prompt, negative prompt, steps, sampler, CFG
scale, seed, size, model hash and model, which most image viewers and web UIs read) and as the full record in JSON
(an iTXt chunk named sd-record), which Import-SDImage reads back losslessly. The pixels are stored exactly as they
are in memory (8-bit RGB, no colour profile).
'@
        @'
-Path is a file name, a folder, or a template. A template's tokens are replaced, in folder names too, with values from
each image's record, case-insensitively: {Seed}, {Index} (the image's place in its batch, from 0), {Steps},
{Guidance}, {Scheduler}, {Width}, {Height}, {Prompt} (its first 60 characters), {Model} (the model folder's name),
{Hash} (the first 10 hex digits of a SHA-256 of the pixels), {Date} (yyyyMMdd) and {Time} (HHmmss) of when the image
was made, in local time (of when it is saved, for an image without a creation time), and {Kind} (txt2img, img2img...). Characters that a file name cannot hold become '_'. An
unknown token is the error InvalidPathTemplate, and nothing is written. Token values never contain path separators,
so 'out/{Model}/{Seed}.png' makes one folder per model. Quote templates: in PowerShell an unquoted {...} is a script block.
'@
        @'
When -Path is an existing folder, or ends with / or \, the images are saved there as
{Date}-{Time}-{Seed}-{Index}.png. Missing folders are created. The file name must end in .png (error
UnsupportedImageFormat). Each file is written atomically: the PNG is written to a temporary file that is then renamed,
so a failure or Ctrl+C never leaves a half-written image.
'@
        @'
An existing file is not overwritten unless -Force is given (error FileExists, the image is skipped and the others are
saved). Two images of one call that expand to the same file name are the error DuplicateOutputPath: add {Index} or
{Seed} to the template. Save-SDImage supports -WhatIf and -Confirm. Saving also sets the image's SourcePath.
'@
    )

    Parameters  = @{
        Image = 'The image to save, usually from New-SDImage or Import-SDImage through the pipeline; an image that came back from Start-Job, Invoke-Command or Import-Clixml (a Deserialized.PSStableDiffusion.Engine.SDImage) is restored from the PNG it carries.'
        Path  = @'
The PNG file, template or folder to save to. Relative paths, ~ and PowerShell drives are resolved from the current
location. See the description for the template tokens and the default file name.
'@
        Force = 'Overwrites existing files. Without it, an existing file is the error FileExists and is left as it is.'
    }

    Inputs      = @(
        @{ Type = 'PSStableDiffusion.Engine.SDImage'; Description = 'The images to save.' }
    )

    Outputs     = @(
        @{ Type = 'System.IO.FileInfo'; Description = 'The file written for each image. Nothing is written with -WhatIf.' }
    )

    Notes       = @(
        @'
Errors (non-terminating unless stated): InvalidPathTemplate (terminating: an unknown token), UnsupportedImageFormat,
FileExists and DuplicateOutputPath (ResourceExists), and IOError, AccessDenied or SaveFailed when the file cannot be
written.
'@
    )

    Examples    = @(
        @{
            Title   = 'Save with a file name per seed and index'
            Code    = @'
New-SDImage 'a koi pond, ukiyo-e' -Model ./sd21 -Count 4 | Save-SDImage './out/koi-{Seed}-{Index}.png'
'@
            Remarks = 'Writes koi-<seed>-0.png to koi-<seed>-3.png in ./out, creating the folder if needed.'
        }
        @{
            Title   = 'Save into a folder under the default name'
            Code    = 'New-SDImage ''a snowy forest'' -Model ./sd21 | Save-SDImage ./out/'
            Remarks = 'Writes ./out/<yyyyMMdd>-<HHmmss>-<seed>-0.png.'
        }
        @{
            Title   = 'See what would be written'
            Code    = 'Import-SDImage ./old/*.png | Save-SDImage ''./archive/{Model}-{Seed}.png'' -WhatIf'
            Remarks = 'Shows the file each image would be saved to, and writes nothing.'
        }
        @{
            Title   = 'Overwrite a file'
            Code    = '$image | Save-SDImage ./latest.png -Force'
            Remarks = 'Replaces latest.png if it exists; without -Force the existing file is kept and an error says so.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Import-SDImage'
        'about_PSStableDiffusion'
    )
}
