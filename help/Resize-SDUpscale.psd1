@{
    Synopsis    = 'Upscales images four times with the Stable Diffusion x4 upscaler, guided by a prompt.'

    Description = @(
        @'
Resize-SDUpscale runs diffusers' StableDiffusionUpscalePipeline on the x4 upscaler model
(x4-upscaler-ema, Stability AI's x4 upscaler: a UNet with 7 input channels, the latents and the noised low-resolution
image, and the noise level as its class label). Each input image comes out four times wider and higher, with detail
that the model invents following the prompt: a 128x128 image becomes 512x512, a 512x512 image 2048x2048.
'@
        @'
Images come from the pipeline: SDImage objects (from New-SDImage or Import-SDImage), paths, or files from
Get-ChildItem. When an SDImage is piped, its Prompt and NegativePrompt bind to -Prompt and -NegativePrompt, so an image
is upscaled with the prompt that made it unless -Prompt is given; an image file without a generation record gets an
empty prompt. An input whose width or height is not a multiple of 4 is resized down to the nearest multiple (bicubic,
reported with -Verbose).
'@
        @'
Before upscaling, noise of -NoiseLevel is added to the low-resolution image (the model's noise_level): more noise
lets the model change more. -Steps and -GuidanceScale default to diffusers' defaults for this pipeline, 75 and 9.
'@
        @'
Large inputs are processed in overlapping tiles, so that a 512x512 to 2048x2048 upscale fits in a CPU's memory: the
UNet runs each step on tiles of -TileSize input pixels (overlapping by a quarter of a tile, their predictions blended
with linear ramps), and the VAE decodes overlapping tiles the same way. Inputs up to the tile size (128x128 by
default) are not tiled, and then the result matches diffusers. Tiled results differ slightly from an untiled run.
'@
    )

    Parameters  = @{
        Image          = @'
The low-resolution image: an SDImage, or the path or FileInfo of an image file (PNG, JPEG, WebP, BMP or GIF). Accepted
from the pipeline. A file that is not an image is the error ParameterArgumentTransformationError.
'@
        Prompt         = @{
            Description  = @'
What the image shows, to guide the invented detail. When an SDImage is piped, its own prompt binds by property name
unless -Prompt is given. An empty prompt works too.
'@
            DefaultValue = 'The piped image''s prompt, else "" (empty)'
        }
        EmbeddingPath  = @{
            Description  = @'
Folders (searched with their subfolders) or files of textual-inversion embeddings (.pt, .bin, .safetensors), searched
before the folders $env:SD_EMBEDDINGS lists. A prompt or negative prompt uses an embedding by its file name without
the extension, as in AUTOMATIC1111 ('lowres, bad-prompt' with bad-prompt.pt): its vectors take the name's place, one
token position each, with the weight where the name stands, and never split across chunks (needs -PromptSyntax
Automatic1111). Only the files a prompt names are read. The image's record and its AUTOMATIC1111 parameters carry each
embedding used and its hash ("TI hashes"); a replay that cannot find one fails with EmbeddingNotFound, and warns when
the file's hash differs. A path that does not exist is EmbeddingPathNotFound; an embedding that is not as wide as the
model's text encoder (an SD 1.x file, 768 wide) is EmbeddingWidthMismatch, naming the file; a file that is not an
embedding is InvalidEmbedding, one whose pickle calls code UnsafeCheckpoint. Get-SDEmbedding lists what is found.
'@
            DefaultValue = 'Only $env:SD_EMBEDDINGS'
        }
        Lora           = @'
LoRAs to apply for this call, added to those the prompt names with <lora:name:multiplier> tags: a hashtable of names or
paths to multipliers (@{ watercolor = 0.8; './more/ink.safetensors' = 0.5 }), objects from Get-SDLora (applied at their
Multiplier), or names alone (1). Names are looked up in -LoraPath and then $env:SD_LORA. kohya/AUTOMATIC1111
(lora_unet_..., lora_te_..., also LDM-named), diffusers/PEFT and older diffusers files are read; several LoRAs add up.
In the prompt, <lora:name:0.8> applies 0.8 to both the text encoder and the UNet, <lora:name:te=0.5:unet=0.8> (or
<lora:name:0.5:0.8>) each its own; the tags are removed before the prompt is read. The image record and its
parameters text carry "Lora hashes" (AUTOMATIC1111's short hash), and the parameters text gives each -Lora LoRA a
tag at the end of its prompt (as the web UI applies LoRAs through tags only), so the web UI makes the same image. Piping
the image back replays each LoRA once and, as the web UI does when infotext is pasted, finds a file named differently
on this machine by its recorded hash: the file of the recorded name (or recorded path) when it has the hash, else the
file in the LoRA folders that has it (-Verbose says which), else the file of the name with a warning that the image
may differ (another version). Errors: LoraNotFound (no such file; in a replay, no file with the recorded hash either),
UnknownLoraKey (a layer this model does not have), LoraModelMismatch (made for another model, such as SD 1.x),
InvalidLora, InvalidSafeTensors, UnsafeCheckpoint.
'@
        LoraPath       = @'
Folders (searched with their subfolders) or files where LoRA names are looked up, before the folders of $env:SD_LORA
(separated as PATH is), as -EmbeddingPath and $env:SD_EMBEDDINGS are: a name is the file name without extension, in
any case, and when two files share a name the first found wins. A -LoraPath that does not exist stops the command with
LoraPathNotFound; an $env:SD_LORA entry that does not exist is a warning. Tags in -NegativePrompt are not read (as in
AUTOMATIC1111: the text stays, no LoRA is applied, and a warning says so).
'@
        PromptSyntax   = @{
            Description  = @'
How -Prompt and -NegativePrompt are read. Automatic1111 (the default) reads them as AUTOMATIC1111's web UI does for
SD 2.x, so prompts pasted from it or from Civitai give the picture they were written for: (word) multiplies the
word's weight by 1.1, [word] divides it by 1.1, (word:1.3) sets 1.3, nesting multiplies, \( \) \[ \] \\ are literal
characters, and BREAK starts a new chunk. A prompt may be longer than the text encoder's 77 tokens: it is cut into
chunks of 75 tokens (moving the words after a comma up to 20 tokens back to the next chunk), each chunk is encoded on
its own and the results are joined, up to 2,400 tokens (32 chunks; more is refused with the error id PromptTooLong).
A weight that cannot be read, such as (x:1.2.3), fails with InvalidPromptSyntax, as it does in AUTOMATIC1111.

Cost: each chunk is one more text-encoder pass (about 0.5 s for SD 2.x on two CPU cores) and makes every
cross-attention of every step longer. When the prompt and the negative prompt need different numbers of chunks, each
step runs the UNet twice, on half the batch each (negative, then prompt), instead of once on a batch of both, as
AUTOMATIC1111 does: this loses what the device gains from batching, which is most on a GPU (-Verbose says when).

None reads the text literally, as diffusers does: brackets are characters and a prompt past 77 tokens is cut off with
a warning showing the dropped part. A prompt without brackets, colons or BREAK and of at most 75 tokens gives the
same picture either way, bit for bit.
'@
            DefaultValue = 'Automatic1111'
        }
        NegativePrompt = @{
            Description  = @'
What to steer away from. When an SDImage is piped, its own negative prompt binds by property name unless this is
given.
'@
            DefaultValue = 'The piped image''s negative prompt, else "" (empty)'
        }
        NoiseLevel     = @{
            Description  = @'
The noise added to the low-resolution image before upscaling, 0 to 350 (the model's max_noise_level); 400 is the
error ParameterArgumentValidationError. Low values keep the input faithfully; high values let the model re-imagine it.
'@
            DefaultValue = '20'
        }
        Steps          = @{
            Description  = 'The number of denoising steps, 1 to 1000.'
            DefaultValue = '75'
        }
        GuidanceScale  = @{
            Description  = 'The classifier-free guidance scale, 0 to 100. At 1 or less the unconditional pass is skipped.'
            DefaultValue = '9'
        }
        Seed           = @{
            Description  = @'
The seed of the CPU random generator, 0 or more: the same seed and settings give diffusers' image with
torch.Generator('cpu').manual_seed(seed) (for untiled inputs). When omitted, a random seed below 2^32 is drawn for each
image and recorded.
'@
            DefaultValue = 'A random seed per image, recorded in the image'
        }
        Scheduler      = @{
            Description  = @'
The scheduler (sampler): a diffusers class name or an AUTOMATIC1111 sampler name; press Tab to complete, and see
Get-SDScheduler. An unknown name is the error UnknownScheduler. The noise added to the low-resolution image always
uses the model's own low_res_scheduler.
'@
            DefaultValue = "The model's scheduler (DDIM for the released upscaler)"
        }
        TileSize       = @{
            Description  = @'
The tile edge, in input pixels (the upscaler's latents have the input's size), 8 to 4096, or 0 to never tile. An input
whose width or height exceeds it is processed in tiles of TileSize x TileSize input pixels (4 x TileSize output
pixels); smaller inputs run whole. Smaller tiles need less memory and run more UNet calls.
'@
            DefaultValue = '128 (tiles of 512x512 output pixels)'
        }
        Model          = @'
The x4 upscaler, a model whose UNet has 7 input channels: a diffusers model folder (with a low_res_scheduler
subfolder), a single-file checkpoint (x4-upscaler-ema.safetensors) or a Hugging Face hub id, as for New-SDImage (see
Get-SDModel). Stability AI withdrew its x4 upscaler repository from the hub in November 2025 and no community mirror
of it is known: its old hub id works only from a copy already in the local Hugging Face cache (else the error
ModelWithdrawn); otherwise pass a local copy. Any other model is the error ModelMismatch; nothing there and not a hub id is ModelNotFound.
'@
        Config         = @'
Single-file checkpoints only: the ldm YAML config (such as v2-inference-v.yaml) to build the model from, instead of the
YAML beside the checkpoint (its name with .yaml) or detection from the tensor shapes. With a folder or hub id it is the
error InvalidArgument.
'@
        PredictionType = @{
            Description  = @'
epsilon or v_prediction: what the UNet predicts, overriding the model's scheduler config or, for a single file, its
YAML or the detection (SD 2.x 768-v checkpoints are v_prediction, 512-base ones epsilon). A wrong value gives noise.
Each value keeps its own copy of the model in the engine cache.
'@
            DefaultValue = "What the model's files say or detection finds"
        }
        Revision       = @{
            Description  = 'Hub ids only: the branch, tag or commit to download. With a folder or file it is the error InvalidArgument.'
            DefaultValue = 'main'
        }
        Variant        = @'
Hub ids and diffusers folders: the weights variant to load, such as fp16 (the *.fp16.safetensors files), as diffusers'
variant argument; only those files are downloaded. With a single file it is the error InvalidArgument.
'@
        Token          = @{
            Description  = @'
Hub ids only: a Hugging Face access token, for gated or private repositories. An id that is refused is the error
HubAccessDenied. With a folder or file it is the error InvalidArgument.
'@
            DefaultValue = 'HF_TOKEN, else the token huggingface-cli login saved'
        }
        Threads        = @{
            Description  = @'
How many CPU threads libtorch runs each operation on, 1 to 1024. The setting is process-wide and stays in effect for
later calls; -Verbose reports the count used.
'@
            DefaultValue = 'libtorch''s default (the physical cores), at most the processors this process may use'
        }
        Device         = @{
            Description  = 'Where to compute: cpu, cuda or cuda:N (see Get-SDDevice). One that this build or machine lacks is the error InvalidDevice.'
            DefaultValue = 'cuda:0 when the build and machine have a CUDA GPU, else cpu'
        }
        Precision      = @{
            Description  = @'
The compute dtype of the UNet and text encoder. Auto (the default) picks Float16 on CUDA (attention in float32 where the model asks, as SD 2.1 768-v does) and, on a
CPU, BFloat16 only where a one-time measurement on this machine (a few hundred milliseconds, cached per machine with
the model hashes) shows it at least 1.1x faster than Float32, else Float32; -Verbose and the image's record
(PrecisionReason) say what was chosen and why. Use Float32 for images that must match across machines and with
diffusers: Auto can differ between machines. A replay (Import-SDImage | New-SDImage) uses the precision recorded in
the image unless -Precision is given.
BFloat16 asked for explicitly warns when the measurement says it is slower here; Float16 is CUDA only. The
upscaler's VAE always runs in float32, as diffusers runs it.
'@
            DefaultValue = 'Auto'
        }
    }

    Inputs      = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = 'An image to upscale. Its Prompt and NegativePrompt bind to -Prompt and -NegativePrompt unless they are given.'
        }
        @{ Type = 'System.IO.FileInfo'; Description = 'An image file to upscale, for example from Get-ChildItem.' }
        @{ Type = 'System.String'; Description = 'The path of an image file to upscale.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = @'
One per input image, four times its width and height. Its record has PipelineKind Upscale, the NoiseLevel and
SourceImageHash (a SHA-256 of the input image's pixels), besides the prompt, seed, steps, scheduler and model. Nothing
is written to disk; pipe the images to Save-SDImage.
'@
        }
    )

    Notes       = @(
        @'
Errors (the start of FullyQualifiedErrorId): ModelMismatch (InvalidOperation) for a model that is not the x4
upscaler; ParameterArgumentValidationError for -NoiseLevel outside 0..350 and other values out of range;
ParameterArgumentTransformationError (InvalidData) for an -Image that is not an image; InvalidArgument for a
-TileSize below 8; UnknownScheduler, InvalidDevice, ModelNotFound and the model loading errors as in New-SDImage.
'@
        'See about_PSStableDiffusion for the pipelines, model variants and error ids.'
    )

    Examples    = @(
        @{
            Title   = 'Generate small, then upscale'
            Code    = @'
New-SDImage 'a lighthouse on a cliff at dawn' -Model ./sd21-base -Width 256 -Height 256 -Seed 3 -Steps 25 |
    Resize-SDUpscale -Model ~/models/sd-x4-upscaler -Steps 30 |
    Save-SDImage './out/{Seed}-x4.png'
'@
            Remarks = @'
The 256x256 image is upscaled to 1024x1024 with its own prompt. It is larger than the default tile, so it is
processed in 9 overlapping tiles of 128x128 input pixels (512x512 output pixels).
'@
        }
        @{
            Title   = 'Upscale files with a prompt of your own'
            Code    = @'
Get-ChildItem ./thumbnails/*.png |
    Resize-SDUpscale -Prompt 'a white cat sitting on a sofa, detailed fur' -NoiseLevel 10 -Model ./sd-x4-upscaler |
    Save-SDImage './large/{Hash}.png'
'@
            Remarks = 'Files without a generation record have no prompt of their own, so one is given.'
        }
        @{
            Title   = 'The exact output of diffusers'
            Code    = @'
Resize-SDUpscale ./small.png -Prompt 'a white cat sitting on a sofa' -NegativePrompt noisy -Steps 4 -NoiseLevel 20 `
    -Seed 31337 -Model ./sd-x4-upscaler
'@
            Remarks = @'
For an input of up to 128x128 pixels (not tiled), the image is what StableDiffusionUpscalePipeline returns for the same
call with generator=torch.Generator('cpu').manual_seed(31337).
'@
        }
        @{
            Title   = 'Smaller tiles for less memory'
            Code    = 'Import-SDImage ./out/big.png | Resize-SDUpscale -Model ./sd-x4-upscaler -TileSize 64 -Verbose'
            Remarks = '-Verbose reports how many tiles the UNet and the VAE decoder ran.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Invoke-SDInpaint'
        'Save-SDImage'
        'Import-SDImage'
        'about_PSStableDiffusion'
    )
}
