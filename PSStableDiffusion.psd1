@{
    RootModule           = 'PSStableDiffusion.dll'
    # Keep equal to <Version> in Directory.Build.props (a Pester test compares it with the assembly version).
    ModuleVersion        = '0.1.0'
    GUID                 = 'ee372f8f-3ddd-4957-bbce-e510ac39e95d'
    Author               = 'PSStableDiffusion contributors'
    CompanyName          = 'PSStableDiffusion contributors'
    Copyright            = '(c) PSStableDiffusion contributors. MIT License.'
    Description          = 'Stable Diffusion 2.x (text-to-image, image-to-image, inpainting, depth, x4 upscaling) in PowerShell 7, on TorchSharp/libtorch, with results matching diffusers.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    # Loaded before the types file, which names types of both assemblies (PowerShell resolves them as it reads it).
    RequiredAssemblies   = @('PSStableDiffusion.Engine.dll', 'PSStableDiffusion.dll')
    FormatsToProcess     = @('PSStableDiffusion.Format.ps1xml')
    # SDImage through jobs, remoting and Export-Clixml: serialized as its PNG, rehydrated on the other side.
    TypesToProcess       = @('PSStableDiffusion.Types.ps1xml')
    # Every cmdlet the module is meant to have. A Pester test (tests/Pester/Module) fails when the assembly
    # implements a cmdlet that is missing here, or when one listed here is neither implemented nor on its
    # short list of cmdlets still being written.
    CmdletsToExport      = @(
        'Clear-SDEngine'
        'Get-SDDepthMap'
        'Get-SDDevice'
        'Get-SDEmbedding'
        'Get-SDEngine'
        'Get-SDLora'
        'Get-SDModel'
        'Get-SDScheduler'
        'Import-SDImage'
        'Invoke-SDInpaint'
        'New-SDImage'
        'New-SDImageGrid'
        'Resize-SDUpscale'
        'Save-SDImage'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            # Gallery tags: no spaces. PSEdition_Core and the platforms tell PSResourceGet where the module runs;
            # a package holds the natives of one platform (see README, "Installing the module").
            Tags         = @('StableDiffusion', 'TorchSharp', 'libtorch', 'AI', 'Image', 'Diffusion', 'TextToImage',
                'PSEdition_Core', 'Windows', 'Linux', 'MacOS')
            LicenseUri   = 'https://opensource.org/license/mit'
            # The project's public home goes here once it has one: PSResourceGet refuses an empty URI, so there is
            # no ProjectUri until then.
            ReleaseNotes = '0.1.0: first release. Stable Diffusion 2.x text-to-image, image-to-image, inpainting, depth-to-image (the depth estimated by the model''s own MiDaS DPT-Hybrid when no map is given; Get-SDDepthMap writes 16-bit depth maps) and the x4 upscaler on TorchSharp 0.107 / libtorch 2.10, matching diffusers 0.29; 14 schedulers with A1111 names; PNGs that carry their record and replay; SDImage through jobs, remoting and Export-Clixml; contact sheets of sweeps with New-SDImageGrid (X/Y plots with labels, in a bundled font).'
        }
    }
}
