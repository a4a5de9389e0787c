@{
    Synopsis    = 'Repaints the masked part of images with a Stable Diffusion 2.x inpainting model.'

    Description = @(
        @'
Invoke-SDInpaint runs the Stable Diffusion inpainting pipeline (diffusers' StableDiffusionInpaintPipeline) on an
inpainting model: a model whose UNet takes 9 input channels (the latents, the mask and the latents of the masked
image), such as sd2-community/stable-diffusion-2-inpainting (a community copy of Stability AI's withdrawn release; see
about_PSStableDiffusion). It repaints the white part of -Mask following -Prompt
and keeps the black part, and writes one SDImage per image (-Count per input image) with its generation record.
'@
        @'
Images come from the pipeline: SDImage objects (from New-SDImage or Import-SDImage), paths, or the files that
Get-ChildItem lists. Each input image is repainted with the same mask, and each gets its own random seed when -Seed is
omitted. When an SDImage is piped, its Prompt and NegativePrompt bind to -Prompt and -NegativePrompt unless they are
given.
'@
        @'
The mask is read as a grayscale image (a color mask is converted to gray) and binarised at 0.5: white (128 and above)
is repainted, black is kept; -InvertMask swaps them. A mask whose size differs from the image's is resized to it
(Lanczos, then binarised) with a warning. An image whose width or height is not a multiple of 8 is resized down to the
nearest multiple (reported with -Verbose), and the output has that size.
'@
        @'
By default the pixels outside the mask are copied back from the input image after decoding, so the round trip through
the VAE cannot shift their colors: only the masked area changes. diffusers does not do this; -NoComposite keeps the
model's output everywhere and gives diffusers' exact image (with the same seed and settings, within 2 levels out of 255
in float32 on the CPU).
'@
        @'
-Strength 1 (the default) starts the masked area from pure noise, as the released inpainting model expects. Below 1,
the input image is encoded and noised to that point of the schedule, so the repainted area keeps some of its former
shapes and colors, and only int(Steps x Strength) steps run.
'@
        @'
The model is loaded on first use and kept in the engine cache (see Get-SDEngine); progress, -Verbose and Ctrl+C work as
in New-SDImage.
'@
    )

    Parameters  = @{
        Image          = @'
The image to repaint: an SDImage, or the path or FileInfo of an image file (PNG, JPEG, WebP, BMP or GIF). Accepted from
the pipeline, so Get-ChildItem *.png | Invoke-SDInpaint works. A file that is not an image is the error
ParameterArgumentTransformationError; from the pipeline it fails that input only, and the other inputs are still
repainted.
'@
        LiteralPath    = @'
Paths of image files to repaint, used exactly as written (no wildcards). Each file is read in turn; a file that
cannot be read (missing, not an image) is the non-terminating error InvalidImage, and the other files are still
repainted, for example: Invoke-SDInpaint -LiteralPath (Get-ChildItem ./in).FullName -Mask ./mask.png ... Files piped
from Get-ChildItem bind to -Image.
'@
        Mask           = @'
The mask: an SDImage, or the path or FileInfo of an image file. White (gray 128 and above) marks what to repaint,
black what to keep. A mask of another size than the image is resized to the image's size (Lanczos, then binarised at
0.5) with a warning. A file that is not an image is the error ParameterArgumentTransformationError.
'@
        InvertMask     = 'Repaint the black part of the mask and keep the white part. The record''s MaskHash ends in -inverted.'
        TiledDecode    = @'
Decode the latents in overlapping 512x512 tiles (64x64 latent pixels, overlap 16, blended linearly), as diffusers'
enable_vae_tiling does. The decoder's memory then stays near that of one 512x512 decode (about 1.3 GiB in float32)
whatever the image size; without it a 1024x1024 decode needs about four times that. Each tile normalises its own
features, so faint seams or tone shifts between tiles are possible. Images no larger than 512x512 are not tiled.
'@
        NoComposite    = @'
Keep the model's output everywhere. By default the pixels outside the mask are copied back from the input image, so
only the masked area changes; with -NoComposite the unmasked area is the VAE's reconstruction (slightly different
colors), as diffusers returns it.
'@
        Prompt         = @'
What to paint into the masked area. Required; when an SDImage is piped, its own prompt binds by property name unless
-Prompt is given.
'@
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
What to steer away from: the unconditional half of classifier-free guidance. It has no effect when -GuidanceScale is
1 or less. When an SDImage is piped, its own negative prompt binds by property name unless this is given.
'@
            DefaultValue = '"" (empty)'
        }
        Strength       = @{
            Description  = @'
How far to move away from the input image inside the mask, greater than 0 and at most 1. 1 starts the masked area
from pure noise; lower values keep more of what was there, and run only int(Steps x Strength) denoising steps. 0 is
the error InvalidStrength, and a strength that leaves no step at all (for example -Strength 0.1 -Steps 5) is the
error InvalidArgument.
'@
            DefaultValue = '1'
        }
        Steps          = @{
            Description  = 'The number of denoising steps (diffusers'' num_inference_steps), 1 to 1000.'
            DefaultValue = '50'
        }
        GuidanceScale  = @{
            Description  = @'
The classifier-free guidance scale, 0 to 100. At 1 or less the unconditional pass is skipped and the negative prompt
is ignored.
'@
            DefaultValue = '7.5'
        }
        Seed           = @{
            Description  = @'
The seed of the CPU random generator, 0 or more. The same seed and settings give diffusers' image with
torch.Generator('cpu').manual_seed(seed) (with -NoComposite). When omitted, a random seed below 2^32 is drawn for each
input image and recorded.
'@
            DefaultValue = 'A random seed per input image, recorded in the image'
        }
        Scheduler      = @{
            Description  = @'
The scheduler (sampler): a diffusers class name, with or without the Scheduler suffix, or an AUTOMATIC1111 sampler
name such as 'DPM++ 2M Karras' or 'Euler a'; press Tab to complete, and see Get-SDScheduler. An unknown name is the
error UnknownScheduler.
'@
            DefaultValue = "The model's scheduler (scheduler/scheduler_config.json)"
        }
        Count          = @{
            Description  = 'The number of images per input image, 1 to 64, denoised as one batch from one noise draw.'
            DefaultValue = '1'
        }
        Model          = @'
The inpainting model, one whose UNet has 9 input channels (such as sd2-community/stable-diffusion-2-inpainting): a
diffusers model folder, a single-file checkpoint (.safetensors, .ckpt, .pt, .pth) or a Hugging Face hub id, as for
New-SDImage (see Get-SDModel). Relative paths, ~ and PowerShell drives are resolved from the current location. Any other
model (text-to-image, depth, upscaler) is the error ModelMismatch, whose message names the model's variant and what it
can do; nothing there and not a hub id is ModelNotFound.
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
The compute dtype. Auto (the default) picks Float16 on CUDA (attention in float32 where the model asks, as SD 2.1 768-v does) and, on a
CPU, BFloat16 only where a one-time measurement on this machine (a few hundred milliseconds, cached per machine with
the model hashes) shows it at least 1.1x faster than Float32, else Float32; -Verbose and the image's record
(PrecisionReason) say what was chosen and why. Use Float32 for images that must match across machines and with
diffusers: Auto can differ between machines. A replay (Import-SDImage | New-SDImage) uses the precision recorded in
the image unless -Precision is given.
BFloat16 asked for explicitly warns when the measurement says it is slower here; Float16 is CUDA only (InvalidDevice
on the CPU).
'@
            DefaultValue = 'Auto'
        }
    }

    Inputs      = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = 'An image to repaint. Its Prompt and NegativePrompt bind to -Prompt and -NegativePrompt unless they are given.'
        }
        @{ Type = 'System.IO.FileInfo'; Description = 'An image file to repaint, for example from Get-ChildItem.' }
        @{ Type = 'System.String'; Description = 'The path of an image file to repaint.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = @'
One per image, of the input image's size (rounded down to a multiple of 8). Its record has PipelineKind Inpaint, the
Strength, SourceImageHash (a SHA-256 of the input image's pixels) and MaskHash (of the 8-bit mask, with -inverted
appended for -InvertMask), besides the prompt, seed, steps, scheduler and model. Nothing is written to disk; pipe the
images to Save-SDImage.
'@
        }
    )

    Notes       = @(
        @'
Errors (the start of FullyQualifiedErrorId): ModelMismatch (InvalidOperation) for a model that is not an inpainting
model; InvalidStrength (InvalidArgument) for -Strength 0; InvalidArgument when Strength x Steps leaves no step;
ParameterArgumentTransformationError (InvalidData) for an -Image or -Mask that is not an image; InvalidImage
(InvalidData, non-terminating) for a file among -LiteralPath that cannot be read; UnknownScheduler, InvalidDevice,
ModelNotFound and the model loading errors as in New-SDImage; ParameterArgumentValidationError for values outside a
parameter's range. Except for the non-terminating ones, they stop the command before any image is written.
'@
        'See about_PSStableDiffusion for the pipelines, model variants and error ids.'
    )

    Examples    = @(
        @{
            Title   = 'Repaint part of a photo'
            Code    = @'
Invoke-SDInpaint ./street.png -Mask ./street-mask.png -Prompt 'a red sports car parked on the street' -Model ~/models/sd2-inpainting -Steps 30 |
    Save-SDImage './out/{Seed}.png'
'@
            Remarks = @'
Repaints the white part of street-mask.png with a red sports car and saves the result. Outside the mask the pixels
are those of street.png.
'@
        }
        @{
            Title   = 'Repaint every PNG of a folder with one mask'
            Code    = @'
Get-ChildItem ./frames/*.png |
    Invoke-SDInpaint -Mask ./logo-mask.png -Prompt 'a clear blue sky' -Model ./sd2-inpainting -Seed 1 -Steps 25 |
    Save-SDImage './cleaned/{Index}-{Hash}.png'
'@
            Remarks = @'
Each file from Get-ChildItem binds to -Image. A file that is not an image is reported and skipped; the other files
are still repainted.
'@
        }
        @{
            Title   = 'The exact output of diffusers'
            Code    = @'
Invoke-SDInpaint ./input.png -Mask ./mask.png -Prompt 'a red sports car parked on the street' -NegativePrompt cartoon `
    -Steps 5 -Seed 99 -NoComposite -Model ./sd2-inpainting
'@
            Remarks = @'
With -NoComposite the image is what StableDiffusionInpaintPipeline returns for the same call with
generator=torch.Generator('cpu').manual_seed(99).
'@
        }
        @{
            Title   = 'Keep the masked area, repaint the rest, a little'
            Code    = @'
New-SDImage 'a portrait of an astronaut' -Model ./sd21-base -Seed 5 |
    Invoke-SDInpaint -Mask ./face.png -InvertMask -Strength 0.5 -Prompt 'an astronaut on the moon' -Model ./sd2-inpainting
'@
            Remarks = @'
Repaints the background (the black part of face.png) and keeps the face. With -Strength 0.5 the new background starts
from the old one, half noised, and half of the steps run.
'@
        }
    )

    Links       = @(
        'New-SDImage'
        'Resize-SDUpscale'
        'Save-SDImage'
        'Import-SDImage'
        'Get-SDScheduler'
        'about_PSStableDiffusion'
    )
}
