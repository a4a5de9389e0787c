@{
    Synopsis    = 'Lists the textual-inversion embeddings that prompts can use, with their vectors, width, hash and whether they fit SD 2.x.'

    Description = @(
        @'
A textual-inversion embedding is a small file of learned vectors that a prompt calls up by a trigger word, the file
name without its extension, as in AUTOMATIC1111's web UI: with bad-prompt.pt in an embedding folder, the negative
prompt 'lowres, bad-prompt' uses it. Get-SDEmbedding writes one object per name found in -Path (folders are searched
with their subfolders; files are taken as given) and then in the folders $env:SD_EMBEDDINGS lists (separated by ';' on
Windows, ':' elsewhere), the same places New-SDImage, Invoke-SDInpaint and Resize-SDUpscale search with -EmbeddingPath.
Names compare without regard to case; when two files have one name, the first found is used (-Verbose names the
others). Files with the extensions .pt, .bin and .safetensors are listed; empty files are skipped.
'@
        @'
Each file is read as the generating cmdlets read it: AUTOMATIC1111 .pt files (string_to_param, also the older
ParameterDict layout), diffusers learned_embeds files ({token: vector}) and single-tensor .safetensors files
(emb_params), through the module's restricted reader, which runs no code from the file. A file that is not an
embedding is the non-terminating error InvalidEmbedding; a .pt whose pickle calls code is UnsafeCheckpoint
(SecurityError) and is not loaded.
'@
        @'
Fits says whether the vectors are as wide as the text encoder: 1024 for SD 2.x (see -TextEncoderWidth). Embeddings
trained for SD 1.x are 768 wide; they are listed with a warning naming the file, and a prompt that names one fails with
EmbeddingWidthMismatch rather than being read as plain words.
'@
    )

    Parameters  = @{
        Name             = @{
            Description  = 'Only the embeddings whose name matches one of these names or wildcard patterns (case-insensitive). Accepted from the pipeline.'
            DefaultValue = 'All embeddings'
        }
        Path             = @{
            Description  = @'
Folders (searched with their subfolders) or embedding files, listed before the folders of $env:SD_EMBEDDINGS. A path
that does not exist is the terminating error EmbeddingPathNotFound (ObjectNotFound). Relative paths and PowerShell
drives are resolved against the current location.
'@
            DefaultValue = 'Only $env:SD_EMBEDDINGS'
        }
        TextEncoderWidth = @{
            Description  = 'The vector width an embedding must have for Fits to be true: 1024 for SD 2.x models (OpenCLIP ViT-H). The tiny test models in tests/golden are 8 wide.'
            DefaultValue = '1024'
        }
    }

    Inputs      = @(
        @{ Type = 'System.String'; Description = 'Embedding names or wildcard patterns.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.Text.Embeddings.EmbeddingInfo'
            Description = @'
One per embedding name: Name (the trigger word), Vectors (token positions it takes in a prompt), Width, Fits, Hash (the
first 12 hex digits of the file's SHA-256, what the image's record and AUTOMATIC1111's "TI hashes" field carry), Path,
Sha256 and Format (the layout found).
'@
        }
    )

    Notes       = @(
        @'
An embedding takes as many of a prompt chunk's 75 token positions as it has vectors and is never split across chunks;
it carries the weight of where it stands, so (my-style:1.2) weights its vectors. The model itself is not changed: other
calls on the same loaded model do not see the embedding.
'@
    )

    Examples    = @(
        @{
            Title   = 'List the embeddings in a folder'
            Code    = 'Get-SDEmbedding -Path ./embeddings'
            Remarks = 'Shows name, vectors, width, fit and hash of every embedding file in ./embeddings and its subfolders.'
        }
        @{
            Title   = 'Use the folder for every call of this session'
            Code    = @'
$env:SD_EMBEDDINGS = (Resolve-Path ./embeddings).Path
Get-SDEmbedding 'bad*'
New-SDImage 'a lighthouse at dawn' -NegativePrompt 'lowres, bad-prompt' -Model ./sd21
'@
            Remarks = 'New-SDImage finds bad-prompt.pt through $env:SD_EMBEDDINGS; the image''s record names it and its hash.'
        }
        @{
            Title   = 'Find embeddings made for SD 1.x'
            Code    = 'Get-SDEmbedding -Path ./embeddings -WarningAction SilentlyContinue | Where-Object { -not $_.Fits }'
            Remarks = 'Lists the files whose width is not 1024; SD 2.x models cannot use them.'
        }
    )

    Links       = @(
        'New-SDImage'
        'about_PSStableDiffusion'
    )
}
