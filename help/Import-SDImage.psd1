@{
    Synopsis    = 'Reads image files into SDImage objects, with the generation record they carry.'

    Description = @(
        @'
Import-SDImage reads PNG, JPEG, WebP, BMP and GIF (first frame) files and writes one SDImage per file, with its
pixels as 8-bit RGB (an alpha channel is dropped, no colour management is applied). A PNG written by Save-SDImage
gives back its full generation record: prompt, negative prompt, seed, steps, guidance scale, scheduler and its
config, size, model path and hash, dtype, device, timings, module version and creation time. A PNG from
AUTOMATIC1111's web UI gives the record parsed from its "parameters" text (with its LoRA tags and "Lora hashes",
by which a replay finds each LoRA file). Any other image has an empty record that
holds only its size.
'@
        @'
Piping an imported image into New-SDImage -Model makes it again. Every file is checked before any pixel is decoded
(PNG chunk lengths and CRCs, at most 16384 pixels a side, 8192x8192 pixels and 512 MiB a file), so a damaged or
crafted file is an error, not a crash or a huge allocation.
'@
        @'
-Path takes wildcards; -LiteralPath takes paths as they are and binds the files that Get-ChildItem writes. A file that
cannot be read is a non-terminating error, and the other files are still read.
'@
    )

    Parameters  = @{
        Path        = 'The image files to read. Wildcards are allowed; relative paths are resolved from the current location.'
        LiteralPath = @'
The image files to read, used exactly as typed (no wildcards). Get-ChildItem's output binds to it by its PSPath
property, so Get-ChildItem ./out -Filter *.png | Import-SDImage reads every file it lists.
'@
    }

    Inputs      = @(
        @{ Type = 'System.String'; Description = 'Paths, bound to -Path.' }
        @{ Type = 'System.IO.FileInfo'; Description = 'Files from Get-ChildItem, bound to -LiteralPath by their PSPath (aliases PSPath and FullName).' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = 'One per file, with SourcePath set to the file''s full path and the Record read from the file.'
        }
    )

    Notes       = @(
        @'
Errors (non-terminating): FileNotFound (ObjectNotFound) for a path that does not exist or is not a file, and
InvalidImage (InvalidData) for a file that is not a supported image, is damaged, exceeds the size limits, or whose
sd-record is not valid JSON.
'@
    )

    Examples    = @(
        @{
            Title   = 'Read how an image was made'
            Code    = 'Import-SDImage ./out/1234567.png | Format-List Prompt, NegativePrompt, Seed, Steps, GuidanceScale, Scheduler, Width, Height, Model'
            Remarks = 'Shows the generation settings that Save-SDImage stored in the file.'
        }
        @{
            Title   = 'Make an image again with more steps'
            Code    = 'Import-SDImage ./out/1234567.png | New-SDImage -Model ./sd21 -Steps 50 | Save-SDImage ''./out/{Seed}-50.png'''
            Remarks = 'Replays the image''s prompt, seed and settings, with 50 steps instead of the recorded number.'
        }
        @{
            Title   = 'Find the images of one seed'
            Code    = 'Get-ChildItem ./out -Filter *.png -Recurse | Import-SDImage | Where-Object Seed -EQ 42 | Select-Object SourcePath, Prompt'
            Remarks = 'Reads every PNG under ./out and lists those made with seed 42.'
        }
    )

    Links       = @(
        'Save-SDImage'
        'New-SDImage'
        'about_PSStableDiffusion'
    )
}
