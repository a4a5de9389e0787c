@{
    Synopsis    = 'Estimates the depth of images with the MiDaS DPT-Hybrid estimator that depth models ship, as 16-bit grayscale depth maps.'

    Description = @(
        @'
Get-SDDepthMap runs the depth estimator of stable-diffusion-2-depth (MiDaS DPT-Hybrid, transformers'
DPTForDepthEstimation with its DPTImageProcessor) on each image and writes the depth map as an SDImage of the image's
size that holds 16-bit grayscale levels, brighter nearer (MiDaS predicts relative inverse depth). It is the depth that
New-SDImage -InitImage estimates on a depth model when no -DepthMap is given; as a cmdlet it serves pipelines, other
tools, and a look at what the model will follow.
'@
        @'
The prediction (at the processor's size, 384x384 for the released model) is resized to the image bicubic, as
transformers' depth-estimation pipeline resizes it. Without -Normalize the levels are the prediction scaled by its
peak, trunc(d x 65535 / max(d)), as that pipeline scales it to 8 bits (bicubic overshoot below zero becomes 0); with
-Normalize they are min-max normalised, trunc(65535 x (d - min) / (max - min)), as MiDaS' write_depth writes 16-bit
maps. The record keeps both ends: level v stands for DepthRange[0] + v x (DepthRange[1] - DepthRange[0]) / 65535.
'@
        @'
Save-SDImage writes such an image as a 16-bit grayscale PNG (with the record as JSON), and New-SDImage -DepthMap reads
the PNG, or takes the SDImage itself, without loss. Import-SDImage keeps the 16 bits of a 16-bit grayscale PNG too.
'@
        @'
With a depth model, the whole model loads into the engine cache (as New-SDImage loads it) and its estimator with it, on
first use, in -Precision on -Device: a later New-SDImage on the same model loads nothing again. A DPT folder alone
(config.json, model.safetensors and preprocessor_config.json) loads only the estimator.
'@
    )

    Parameters  = @{
        Image     = @'
The image: an SDImage, or the path or FileInfo of an image file (PNG, JPEG, WebP, BMP or GIF). Accepted from the
pipeline. A file that is not an image is the error ParameterArgumentTransformationError. Any size up to the module's
image limits works, 1x1 included: the processor resizes every image to the estimator's input size.
'@
        Model     = @'
Where the estimator comes from: a depth model (a diffusers folder with depth_estimator and feature_extractor folders,
such as sd2-community/stable-diffusion-2-depth, or the single file 512-depth-ema.ckpt, whose depth_model.* weights are
the estimator), a hub id of such a model, or a DPT folder alone. A model without an estimator (another kind, or a depth
model without those folders or weights) is the error ModelMismatch; nothing there and not a hub id is ModelNotFound.
'@
        Normalize = @'
Min-max normalise each map to the full range 0..65535 (MiDaS' relative map in [0, 1], at 16 bits). A constant
prediction then gives a flat map of zeros, with a warning, as MiDaS writes it (depth-to-image refuses such a map).
Without it the levels are the prediction scaled by its own peak, so zero depth stays 0.
'@
        Device    = @{
            Description  = 'Where to compute: cpu, cuda or cuda:N (see Get-SDDevice). One that this build or machine lacks is the error InvalidDevice.'
            DefaultValue = 'cuda:0 when the build and machine have a CUDA GPU, else cpu'
        }
        Precision = @{
            Description  = @'
The compute dtype of the estimator (and of the depth model, which loads with it): Float32, BFloat16 (fast only on CPUs
with AVX512_BF16) or Float16 (CUDA only). Auto, the generating cmdlets' default, means Float32 here: the estimator is
small, and Auto's measurement is of the UNet's shapes. A depth model keeps one copy per precision in the engine cache.
'@
            DefaultValue = 'Float32'
        }
        Revision  = @{
            Description  = 'Hub ids only: the branch, tag or commit to download. With a folder or file it is the error InvalidArgument.'
            DefaultValue = 'main'
        }
        Token     = @{
            Description  = @'
Hub ids only: a Hugging Face access token, for gated or private repositories. An id that is refused is the error
HubAccessDenied. With a folder or file it is the error InvalidArgument.
'@
            DefaultValue = 'HF_TOKEN, else the token huggingface-cli login saved'
        }
        Threads   = @{
            Description  = @'
How many CPU threads libtorch runs each operation on, 1 to 1024. The setting is process-wide and stays in effect for
later calls; -Verbose reports the count used.
'@
            DefaultValue = 'libtorch''s default (the physical cores), at most the processors this process may use'
        }
    }

    Inputs      = @(
        @{ Type = 'PSStableDiffusion.Engine.SDImage'; Description = 'An image whose depth to estimate.' }
        @{ Type = 'System.IO.FileInfo'; Description = 'An image file, for example from Get-ChildItem.' }
        @{ Type = 'System.String'; Description = 'The path of an image file.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.SDImage'
            Description = @'
One per input image, of its size: Gray16 holds the 16-bit levels (Pixels their 8-bit gray view). The record has Depth
'estimated (DPT-Hybrid)', DepthEstimatorHash (SHA-256 of the estimator's weights), DepthNormalized, DepthRange,
SourceImageHash (SHA-256 of the input's pixels), the model path, dtype, device and the time taken. Nothing is written
to disk; pipe it to Save-SDImage.
'@
        }
    )

    Notes       = @(
        @'
Errors (the start of FullyQualifiedErrorId): ModelMismatch (InvalidOperation) for a model without a depth estimator;
ModelNotFound for a -Model that names nothing (or a folder that is neither a diffusers model nor a DPT folder);
ParameterArgumentTransformationError (InvalidData) for an -Image that is not an image; NonFiniteOutput (InvalidResult)
when the estimator's output holds NaN or infinity (try -Precision Float32); InvalidDevice and the model loading errors
as in New-SDImage. An image that fails is reported and the next one is estimated; a model that fails stops the command.
'@
        'See about_PSStableDiffusion for the pipelines, model variants and error ids.'
    )

    Examples    = @(
        @{
            Title   = 'Save the depth of a photo as a 16-bit PNG'
            Code    = 'Get-SDDepthMap ./photo.png -Model ./stable-diffusion-2-depth | Save-SDImage ./photo-depth.png'
            Remarks = 'The PNG holds 16-bit gray levels, the prediction scaled by its peak, brighter nearer.'
        }
        @{
            Title   = 'Inspect, then generate from the same depth'
            Code    = @'
$depth = Get-SDDepthMap ./room.jpg -Model ./stable-diffusion-2-depth -Normalize
New-SDImage 'a cosy cabin interior, warm light' -InitImage ./room.jpg -DepthMap $depth -Model ./stable-diffusion-2-depth
'@
            Remarks = @'
The second call reuses the model the first loaded (and its estimator). -DepthMap takes the 16-bit levels as they are
and the pipeline min-max normalises them. The picture is close to, not exactly, the one New-SDImage makes estimating
the depth itself: that resizes the prediction straight to the latent size, while this map was resized to the image first.
'@
        }
        @{
            Title   = 'Depth maps for a folder, from the single-file checkpoint'
            Code    = @'
Get-ChildItem ./photos/*.jpg | Get-SDDepthMap -Model ./512-depth-ema.ckpt -Normalize |
    Save-SDImage './depth/{Hash}.png'
'@
            Remarks = 'The checkpoint''s depth_model.* weights are the estimator; they load once, on the first image.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Save-SDImage'
        'Import-SDImage'
        'Get-SDModel'
        'about_PSStableDiffusion'
    )
}
