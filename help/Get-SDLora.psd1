@{
    Synopsis    = 'Lists the LoRA files in the LoRA folders, with their format, rank, alpha, parts, model family and hash.'

    Description = @(
        @'
Get-SDLora writes one LoraInfo object per LoRA file (.safetensors, .pt, .ckpt, .bin) in the folders and files of
-LoraPath and then the folders of $env:SD_LORA (separated as PATH is), each searched with its subfolders. Each object has the Name (the
file name without extension: what <lora:name:0.8> in a prompt and -Lora @{ name = 0.8 } look up), the Path, the Format
(Kohya for kohya-ss and AUTOMATIC1111 files, lora_unet_... and lora_te_..., also with LDM names such as
lora_unet_input_blocks_4_1_...; Peft for diffusers/PEFT files, unet....lora_A.weight; DiffusersOld for diffusers'
names before PEFT), the Rank and Alpha most layers have (no alpha means a scale of 1), the Parts it changes (UNet,
TextEncoder, and Conv when it changes convolutions, "LoCon"), the BaseModel its layer widths fit (SD 2.x: 1024-wide
text; SD 1.x: 768; SDXL: 2048) and its Hash, AUTOMATIC1111's short hash that the image record and its parameters text
carry as Lora hashes.
'@
        @'
Files are read with the same readers as model checkpoints: safetensors through the checked reader, .pt/.ckpt through a
restricted unpickler that never runs code from the file. A file that cannot be read is a non-terminating error naming
it (InvalidSafeTensors, UnsafeCheckpoint, InvalidLora, UnknownLoraKey) and the listing goes on.
'@
        @'
Pass the objects to -Lora of New-SDImage, Invoke-SDInpaint or Resize-SDUpscale; set their Multiplier first to apply
them more or less strongly (default 1).
'@
    )

    Parameters  = @{
        Name     = @'
Only the LoRAs whose name matches one of these names or wildcard patterns (case-insensitive). Accepted from the
pipeline. A name without wildcards that matches no file is the non-terminating error LoraNotFound (ObjectNotFound).
'@
        LoraPath = @'
Folders (searched with their subfolders) or files to list, before the folders of $env:SD_LORA. Relative paths and
PowerShell drives are resolved against the current location. A path that does not exist stops the command with
LoraPathNotFound (ObjectNotFound); an $env:SD_LORA entry that does not exist is a warning. When two files share a name,
the first found is listed (-Verbose names the other).
'@
    }

    Inputs      = @(
        @{ Type = 'System.String[]'; Description = 'LoRA names or wildcard patterns (the -Name parameter).' }
    )
    Outputs     = @(
        @{ Type = 'PSStableDiffusion.Engine.Lora.LoraInfo'; Description = 'One object per LoRA file found.' }
    )

    Notes       = @'
A LoRA is applied to one call only: the cached model's own weights are never changed as other calls see them (the
changed layers get new weights for the call and their own back afterwards, also on an error or Ctrl+C).
'@

    Examples    = @(
        @{
            Title   = 'List the LoRAs of a folder'
            Code    = 'Get-SDLora -LoraPath ~/loras'
            Remarks = 'Shows each file''s name, format, rank, alpha, parts, model family and hash.'
        }
        @{
            Title   = 'Apply a listed LoRA at 0.7'
            Code    = @'
$env:SD_LORA = '~/loras'
$style = Get-SDLora watercolor
$style.Multiplier = 0.7
New-SDImage 'a harbour at dawn' -Model ./sd21 -Lora $style
'@
            Remarks = 'The same as <lora:watercolor:0.7> in the prompt.'
        }
        @{
            Title   = 'Find the LoRAs made for another model family'
            Code    = 'Get-SDLora -LoraPath ~/loras | Where-Object BaseModel -NE ''SD 2.x'''
            Remarks = 'SD 1.x LoRAs do not fit SD 2.x models: a generating cmdlet refuses them with LoraModelMismatch.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Invoke-SDInpaint'
        'Resize-SDUpscale'
        'about_PSStableDiffusion'
    )
}
