# Resize-SDUpscale on the tiny x4 upscaler of tests/golden/upscale_x4: a pipeline from New-SDImage, parity with
# diffusers, the record, tiling only for large inputs, errors that write nothing, and tab completion.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:upscaler = Get-SDGoldenModelPath -Case upscale_x4
    $script:baseModel = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    # A 32x32 image of the small text-to-image model, shared with other test files.
    $script:small = @(New-SDTestImage @{ Prompt = 'a white cat sitting on a sofa'; NegativePrompt = 'noisy'; Model = $baseModel; Width = 32; Height = 32; Steps = 1; Seed = 11 })[0]
}

Describe 'Resize-SDUpscale' {
    Context 'From New-SDImage to a file' {
        BeforeAll {
            $script:outFolder = Join-Path $TestDrive 'chain'
            $script:verbose = @(New-SDImage 'a white cat sitting on a sofa' -NegativePrompt noisy -Model $baseModel -Width 32 -Height 32 -Steps 1 -Seed 11 |
                Resize-SDUpscale -Model $upscaler -Steps 2 -Seed 5 -Verbose 4>&1)
            $script:upscaled = @($verbose | Where-Object { $_ -is [PSStableDiffusion.Engine.SDImage] })
            $script:files = @($upscaled | Save-SDImage "$outFolder/{Kind}-{Seed}.png")
        }

        It 'writes one 128x128 image for the 32x32 one' {
            $upscaled.Count | Should -Be 1
            $upscaled[0].Width | Should -Be 128
            $upscaled[0].Height | Should -Be 128
            $files.Count | Should -Be 1
            $files[0].Name | Should -Be 'upscale-5.png'
            (Read-SDTestPng $files[0].FullName).Width | Should -Be 128
        }

        It 'records the pipeline, noise level, source image hash and the piped prompts' {
            $record = $upscaled[0].Record
            $record.PipelineKind | Should -Be 'Upscale'
            $record.NoiseLevel | Should -Be 20
            $record.SourceImageHash | Should -Be $small.ComputeContentHash()
            $record.Steps | Should -Be 2
            $record.GuidanceScale | Should -Be 9
            $record.Prompt | Should -BeExactly 'a white cat sitting on a sofa'
            $record.NegativePrompt | Should -BeExactly 'noisy'
            $record.Strength | Should -BeNullOrEmpty
        }

        It 'does not tile an input smaller than the default tile' {
            $log = ($verbose | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
            $log | Should -Match 'Decoded 1 image\(s\) of 128x128'
            $log | Should -Not -Match 'Tiled'
        }
    }

    Context 'Parity with diffusers' {
        It 'gives expected.png of upscale_x4 within the case tolerance from input_image.png and the case call' {
            $case = Get-SDGoldenCase -Case upscale_x4
            $casePath = Get-SDGoldenCasePath -Case upscale_x4
            $image = Resize-SDUpscale -Image (Join-Path $casePath 'input_image.png') -Model $upscaler `
                -Prompt $case.call.prompt -NegativePrompt $case.call.negative_prompt -NoiseLevel $case.call.noise_level `
                -Steps $case.call.num_inference_steps -GuidanceScale $case.call.guidance_scale -Seed $case.seed
            $expected = Read-SDTestPng (Join-Path $casePath 'expected.png')
            $image.Width | Should -Be $case.call.width
            $image.Height | Should -Be $case.call.height
            Get-SDPixelDifference $expected.Pixels $image.Pixels | Should -BeLessOrEqual (Get-SDGoldenTolerance -Case upscale_x4 -Name image_uint8)
        }
    }

    Context 'Tiling' {
        It 'tiles the UNet and the decoder when the input exceeds -TileSize, and still gives a 4x image' {
            # 16x16 input pixels in tiles of 12 (overlap 3): 2 x 2 tiles. Guidance 1 runs one UNet pass per tile.
            $input = Join-Path (Get-SDGoldenCasePath -Case upscale_x4) 'input_image.png'
            $out = @(Resize-SDUpscale -Image $input -Prompt 'a cat' -Model $upscaler -Steps 1 -GuidanceScale 1 -Seed 5 -TileSize 12 -Verbose 4>&1)
            $image = @($out | Where-Object { $_ -is [PSStableDiffusion.Engine.SDImage] })
            $image.Count | Should -Be 1
            $image[0].Width | Should -Be 64
            $log = ($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
            $log | Should -Match 'Tiled UNet: 4 tiles of 12x12'
            $log | Should -Match 'Tiled VAE decoder'
        }
    }

    Context 'Errors' {
        BeforeEach {
            $script:outFolder = Join-Path $TestDrive "out-$([guid]::NewGuid().ToString('N'))"
        }

        It 'fails with <Id> (<Category>) for <Case>, and writes no file' -ForEach @(
            @{ Case = '-NoiseLevel 400'; Id = 'ParameterArgumentValidationError'; Category = 'InvalidData'; Arguments = @{ NoiseLevel = 400 } }
            @{ Case = 'a text-to-image model'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Arguments = @{ Model = 'base' } }
            @{ Case = 'an unknown scheduler'; Id = 'UnknownScheduler'; Category = 'InvalidArgument'; Arguments = @{ Scheduler = 'NoSuchScheduler' } }
        ) {
            $parameters = @{ Image = $small; Model = $upscaler; Steps = 1; Seed = 1 }
            foreach ($key in $Arguments.Keys) { $parameters[$key] = $Arguments[$key] }
            if ($parameters.Model -eq 'base') { $parameters.Model = $baseModel }
            $record = Get-SDCommandError { Resize-SDUpscale @parameters | Save-SDImage "$outFolder/" }
            $record | Should -Not -BeNullOrEmpty -Because 'the call must fail'
            $record.FullyQualifiedErrorId | Should -BeLike "$Id,PSStableDiffusion.ResizeSDUpscaleCommand"
            $record.CategoryInfo.Category | Should -Be $Category
            $outFolder | Should -Not -Exist
        }

        It 'names the model''s variant in the ModelMismatch message' {
            $record = Get-SDCommandError { Resize-SDUpscale $small -Model $baseModel -Steps 1 }
            $record.Exception.Message | Should -BeLike '*txt2img model (4-channel UNet)*upscal*'
        }

        It 'fails with ParameterArgumentTransformationError for a file that is not an image, and writes no file' {
            $notImage = New-SDNotAnImageFile (Join-Path $TestDrive 'not-an-image.png')
            $record = Get-SDCommandError { Resize-SDUpscale -Image $notImage -Model $upscaler -Steps 1 | Save-SDImage "$outFolder/" }
            $record.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentTransformationError,PSStableDiffusion.ResizeSDUpscaleCommand'
            $record.CategoryInfo.Category | Should -Be 'InvalidData'
            $record.Exception.Message | Should -BeLike '*not-an-image.png*'
            $outFolder | Should -Not -Exist
        }
    }

    Context 'Tab completion of -Scheduler' {
        It 'offers the scheduler names' {
            $completions = (TabExpansion2 -inputScript ($line = 'Resize-SDUpscale -Scheduler DDI') -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Contain 'DDIM'
            $completions | Should -Contain 'DDIMScheduler'
        }
    }
}
