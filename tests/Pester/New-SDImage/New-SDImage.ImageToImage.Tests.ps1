# New-SDImage -InitImage (image-to-image) and -DepthMap (depth-to-image) on the tiny golden models, and the scheduler
# options -Eta and -KarrasSigmas: chains, parity with diffusers, the record, and errors that write nothing.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:img2imgModel = Get-SDGoldenModelPath -Case img2img
    $script:depthModel = Get-SDGoldenModelPath -Case depth2img
    $script:smallModel = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:img2imgPath = Get-SDGoldenCasePath -Case img2img
    $script:depthPath = Get-SDGoldenCasePath -Case depth2img

    function Test-SamePixels($Reference, $Difference) {
        [Linq.Enumerable]::SequenceEqual([byte[]] $Reference.Pixels, [byte[]] $Difference.Pixels)
    }
}

Describe 'New-SDImage -InitImage' {
    Context 'A chain: text-to-image, then image-to-image' {
        BeforeAll {
            $script:first = @(New-SDImage 'a house by a lake' -Model $img2imgModel -Width 64 -Height 64 -Steps 2 -Seed 3)
            $script:second = @($first | ForEach-Object {
                New-SDImage -InitImage $_ -Strength 0.6 'a watercolor painting of a house by a lake' -Model $img2imgModel -Steps 4 -Seed 4
            })
        }

        It 'writes one image of the init image''s size' {
            $second.Count | Should -Be 1
            $second[0].Width | Should -Be 64
            $second[0].Height | Should -Be 64
        }

        It 'records image-to-image, the strength and the init image''s hash' {
            $second[0].PipelineKind | Should -Be 'Img2Img'
            $second[0].Record.Strength | Should -Be 0.6
            $second[0].Record.SourceImageHash | Should -Be $first[0].ComputeContentHash()
            $second[0].Record.Timings.Keys | Should -Contain 'vae_encode'
            $first[0].PipelineKind | Should -Be 'Txt2Img'
            $first[0].Record.Strength | Should -BeNullOrEmpty
        }

        It 'resizes the init image to -Width and -Height' {
            $image = New-SDImage -InitImage $first[0] -Strength 0.5 'x' -Model $img2imgModel -Steps 2 -Seed 1 -Width 32 -Height 48
            $image.Width | Should -Be 32
            $image.Height | Should -Be 48
        }
    }

    Context 'Parity with diffusers' {
        It 'gives expected.png of the img2img case within the case tolerance' {
            $case = Get-SDGoldenCase -Case img2img
            # The case runs EulerDiscrete, the model's own scheduler, so no -Scheduler is needed.
            $ownScheduler = (Get-Content -Raw (Join-Path $img2imgModel 'scheduler/scheduler_config.json') | ConvertFrom-Json)._class_name
            $ownScheduler | Should -Be $case.scheduler.class
            $image = New-SDImage -InitImage (Join-Path $img2imgPath 'input_image.png') -Strength $case.call.strength -Model $img2imgModel `
                -Prompt $case.call.prompt -NegativePrompt $case.call.negative_prompt -Steps $case.call.num_inference_steps `
                -GuidanceScale $case.call.guidance_scale -Seed $case.seed
            $expected = Read-SDTestPng (Join-Path $img2imgPath 'expected.png')
            Get-SDPixelDifference $expected.Pixels $image.Pixels | Should -BeLessOrEqual (Get-SDGoldenTolerance -Case img2img -Name image_uint8)
        }

        It 'gives expected.png of the depth2img case within the case tolerance, from the 16-bit depth PNG' {
            $case = Get-SDGoldenCase -Case depth2img
            $image = New-SDImage -InitImage (Join-Path $depthPath 'input_image.png') -DepthMap (Join-Path $depthPath 'input_depth.png') `
                -Strength $case.call.strength -Model $depthModel -Prompt $case.call.prompt -NegativePrompt $case.call.negative_prompt `
                -Steps $case.call.num_inference_steps -GuidanceScale $case.call.guidance_scale -Seed $case.seed
            $image.PipelineKind | Should -Be 'Depth2Img'
            $image.Record.Strength | Should -Be $case.call.strength
            $expected = Read-SDTestPng (Join-Path $depthPath 'expected.png')
            Get-SDPixelDifference $expected.Pixels $image.Pixels | Should -BeLessOrEqual (Get-SDGoldenTolerance -Case depth2img -Name image_uint8)
        }
    }

    Context 'Depth-to-image' {
        It 'takes the init image and the depth map as FileInfo objects' {
            $depthFile = Get-Item (Join-Path $depthPath 'input_depth.png')
            $init = Get-Item (Join-Path $depthPath 'input_image.png')
            # Strength 0.5 of 2 steps: one denoising step.
            $image = New-SDImage 'a cabin' -InitImage $init -DepthMap $depthFile -Strength 0.5 -Model $depthModel -Steps 2 -Seed 1
            $image.PipelineKind | Should -Be 'Depth2Img'
            $image.Width | Should -Be 64
            $image.Record.Strength | Should -Be 0.5
        }
    }

    Context 'Errors' {
        BeforeAll {
            $script:notImage = New-SDNotAnImageFile (Join-Path $TestDrive 'not-an-image.png')
            $script:init = Join-Path $img2imgPath 'input_image.png'
            $script:depth = Join-Path $depthPath 'input_depth.png'
        }

        BeforeEach {
            $script:outFolder = Join-Path $TestDrive "out-$([guid]::NewGuid().ToString('N'))"
        }

        It 'fails with <Id> (<Category>) for <Case>, and writes no file' -ForEach @(
            @{ Case = '-Strength 0'; Id = 'InvalidStrength'; Category = 'InvalidArgument'; Arguments = @{ InitImage = 'init'; Strength = 0 } }
            @{ Case = 'a strength that leaves no step'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Arguments = @{ InitImage = 'init'; Strength = 0.1; Steps = 2 } }
            @{ Case = '-DepthMap on a text-to-image model'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Arguments = @{ InitImage = 'init'; DepthMap = 'depth' } }
            @{ Case = 'a depth model without -DepthMap'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Arguments = @{ InitImage = 'init'; Model = 'depth' } }
            @{ Case = 'text-to-image on a depth model'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Arguments = @{ Model = 'depth' } }
            @{ Case = 'an init image file that is not an image'; Id = 'ParameterArgumentTransformationError'; Category = 'InvalidData'; Arguments = @{ InitImage = 'not-an-image' } }
            @{ Case = 'a depth map file that is not an image'; Id = 'InvalidImage'; Category = 'InvalidData'; Arguments = @{ InitImage = 'init'; DepthMap = 'not-an-image'; Model = 'depth' } }
            @{ Case = '-Eta on Euler a'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Arguments = @{ Scheduler = 'Euler a'; Eta = 0.5 } }
            @{ Case = '-KarrasSigmas on DDIM'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Arguments = @{ Scheduler = 'DDIM'; KarrasSigmas = $true } }
        ) {
            $files = @{ 'init' = $init; 'depth' = $depth; 'not-an-image' = $notImage }
            $parameters = @{ Prompt = 'x'; Model = $img2imgModel; Steps = 2; Seed = 1 }
            foreach ($key in $Arguments.Keys) { $parameters[$key] = $Arguments[$key] }
            foreach ($key in 'InitImage', 'DepthMap') { if ($parameters.ContainsKey($key)) { $parameters[$key] = $files[$parameters[$key]] } }
            if ($parameters.Model -eq 'depth') { $parameters.Model = $depthModel }
            $record = Get-SDCommandError { New-SDImage @parameters | Save-SDImage "$outFolder/" }
            $record | Should -Not -BeNullOrEmpty -Because 'the call must fail'
            $record.FullyQualifiedErrorId | Should -BeLike "$Id,PSStableDiffusion.NewSDImageCommand"
            $record.CategoryInfo.Category | Should -Be $Category
            $outFolder | Should -Not -Exist
        }

        It 'names -Eta and the schedulers that take it when a scheduler ignores eta' {
            $record = Get-SDCommandError { New-SDImage 'x' -Model $smallModel -Scheduler 'Euler a' -Eta 0.5 -Steps 1 }
            # The engine names the request property; the cmdlet words it as the parameter the user typed.
            $record.Exception.Message | Should -BeLike "Eta does not apply*'Euler a'*EulerAncestralDiscreteScheduler*DDIM*"
            $record.ErrorDetails.Message | Should -BeLike "-Eta does not apply*'Euler a'*EulerAncestralDiscreteScheduler*DDIM*"
        }

        It 'names -KarrasSigmas when a scheduler has no Karras sigmas' {
            $record = Get-SDCommandError { New-SDImage 'x' -Model $smallModel -Scheduler DDIM -KarrasSigmas -Steps 1 }
            $record.Exception.Message | Should -BeLike "KarrasSigmas does not apply*'DDIM'*DPMSolverMultistep*"
            $record.ErrorDetails.Message | Should -BeLike "-KarrasSigmas does not apply*'DDIM'*DPMSolverMultistep*"
        }
    }
}

Describe 'New-SDImage -Eta and -KarrasSigmas' {
    It 'runs DDIM with -Eta and records it' {
        $image = New-SDTestImage @{ Prompt = 'a koi pond'; Model = $smallModel; Scheduler = 'DDIM'; Eta = 1.0; Steps = 2; Seed = 9 }
        $image.Record.Eta | Should -Be 1
        $image.Record.SchedulerConfig['eta'].GetValue[double]() | Should -Be 1
        $plain = New-SDTestImage @{ Prompt = 'a koi pond'; Model = $smallModel; Scheduler = 'DDIM'; Steps = 2; Seed = 9 }
        Test-SamePixels $image $plain | Should -BeFalse -Because 'eta 1 adds noise at every step'
    }

    It 'turns Karras sigmas on and off' {
        $on = New-SDTestImage @{ Prompt = 'a koi pond'; Model = $smallModel; Scheduler = 'EulerDiscrete'; KarrasSigmas = $true; Steps = 3; Seed = 9 }
        $on.Record.SchedulerConfig['use_karras_sigmas'].GetValue[bool]() | Should -BeTrue
        $off = New-SDImage 'a koi pond' -Model $smallModel -Scheduler 'Euler Karras' -KarrasSigmas:$false -Steps 3 -Seed 9
        $off.Record.SchedulerConfig['use_karras_sigmas'].GetValue[bool]() | Should -BeFalse
        Test-SamePixels $on $off | Should -BeFalse
    }

    # A replay takes -Eta and -KarrasSigmas from the piped image's record (hidden -Record parameter).
    It 'replays an image made with -Eta' {
        $image = New-SDTestImage @{ Prompt = 'a koi pond'; Model = $smallModel; Scheduler = 'DDIM'; Eta = 1.0; Steps = 2; Seed = 9 }
        $replayed = $image | New-SDImage -Model $smallModel
        $replayed.Record.Eta | Should -Be 1
        Test-SamePixels $image $replayed | Should -BeTrue
    }

    It 'replays an image made with -KarrasSigmas' {
        $image = New-SDTestImage @{ Prompt = 'a koi pond'; Model = $smallModel; Scheduler = 'EulerDiscrete'; KarrasSigmas = $true; Steps = 3; Seed = 9 }
        $replayed = $image | New-SDImage -Model $smallModel
        $replayed.Record.SchedulerConfig['use_karras_sigmas'].GetValue[bool]() | Should -BeTrue
        Test-SamePixels $image $replayed | Should -BeTrue
    }
}
