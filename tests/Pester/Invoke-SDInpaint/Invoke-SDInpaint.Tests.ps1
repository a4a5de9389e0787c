# Invoke-SDInpaint on the tiny 9-channel model of tests/golden/inpaint: files from Get-ChildItem, the composite of
# the unmasked pixels, parity with diffusers (-NoComposite), masks of another size, errors that write nothing, and
# tab completion.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:inpaintModel = Get-SDGoldenModelPath -Case inpaint
    $script:baseModel = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:casePath = Get-SDGoldenCasePath -Case inpaint
    $script:imagePath = Join-Path $casePath 'input_image.png'
    $script:maskPath = Join-Path $casePath 'input_mask.png'
    $script:source = Read-SDTestPng $imagePath
    $script:maskPng = Read-SDTestPng $maskPath

    # Indexes into the RGB bytes of the pixels the binarised mask repaints (gray >= 128) and keeps.
    $repaint = [Collections.Generic.List[int]]::new()
    $keep = [Collections.Generic.List[int]]::new()
    for ($p = 0; $p -lt $maskPng.Width * $maskPng.Height; $p++) {
        $list = $keep
        if ($maskPng.Pixels[3 * $p] -ge 128) { $list = $repaint }
        $list.Add(3 * $p); $list.Add(3 * $p + 1); $list.Add(3 * $p + 2)
    }
    $script:repaintBytes = $repaint.ToArray()
    $script:keepBytes = $keep.ToArray()

    function Select-Bytes([byte[]] $Pixels, [int[]] $Indexes) {
        [byte[]] @(foreach ($i in $Indexes) { $Pixels[$i] })
    }
}

Describe 'Invoke-SDInpaint' {
    It 'has a mask that repaints part of the image and keeps part of it' {
        $repaintBytes.Count | Should -BeGreaterThan 0
        $keepBytes.Count | Should -BeGreaterThan 0
    }

    Context 'Files from Get-ChildItem' {
        BeforeAll {
            $inFolder = Join-Path $TestDrive 'in'
            $null = Copy-SDGoldenInput -Case inpaint -Name input_image.png -Destination (Join-Path $inFolder 'first.png')
            $null = Copy-SDGoldenInput -Case inpaint -Name input_image.png -Destination (Join-Path $inFolder 'second.png')
            $mask = Copy-SDGoldenInput -Case inpaint -Name input_mask.png -Destination (Join-Path $TestDrive 'mask.png')
            Push-Location $TestDrive
            try {
                # No -Seed: each input image draws its own seed.
                $script:results = @(Get-ChildItem ./in/*.png |
                    Invoke-SDInpaint -Mask mask.png -Prompt 'a red sports car parked on the street' -Model $inpaintModel -Steps 2)
                $script:files = @($results | Save-SDImage './out/{Kind}-{Seed}.png')
                $script:noComposite = @(Get-Item ./in/first.png |
                    Invoke-SDInpaint -Mask $mask -Prompt 'a red sports car parked on the street' -Model $inpaintModel -Steps 2 -Seed $results[0].Seed -NoComposite)
            }
            finally { Pop-Location }
        }

        It 'repaints each file, at its size' {
            $results.Count | Should -Be 2
            foreach ($image in $results) {
                $image.Width | Should -Be $source.Width
                $image.Height | Should -Be $source.Height
            }
            $files.Count | Should -Be 2
            $files | ForEach-Object { $_.FullName | Should -Exist }
        }

        It 'records the pipeline, strength, source image hash and mask hash' {
            $expectedSource = (Import-SDImage $imagePath).ComputeContentHash()
            $expectedMask = (Import-SDImage $maskPath).ToGray().ComputeContentHash()
            foreach ($image in $results) {
                $image.Record.PipelineKind | Should -Be 'Inpaint'
                $image.Record.Strength | Should -Be 1
                $image.Record.SourceImageHash | Should -Be $expectedSource
                $image.Record.MaskHash | Should -Be $expectedMask
                $image.Record.MaskHash | Should -Match '^[0-9a-f]{64}$'
                $image.Prompt | Should -BeExactly 'a red sports car parked on the street'
            }
            $results[1].Seed | Should -Not -Be $results[0].Seed -Because 'each input image draws its own seed'
        }

        It 'keeps the unmasked pixels of the source exactly' {
            $kept = Select-Bytes $results[0].Pixels $keepBytes
            Get-SDPixelDifference (Select-Bytes $source.Pixels $keepBytes) $kept | Should -Be 0
        }

        It 'repaints inside the mask' {
            Get-SDPixelDifference (Select-Bytes $source.Pixels $repaintBytes) (Select-Bytes $results[0].Pixels $repaintBytes) |
                Should -BeGreaterThan 0
        }

        It 'with -NoComposite, differs from the default only outside the mask' {
            $noComposite.Count | Should -Be 1
            Get-SDPixelDifference (Select-Bytes $results[0].Pixels $repaintBytes) (Select-Bytes $noComposite[0].Pixels $repaintBytes) |
                Should -Be 0
            Get-SDPixelDifference (Select-Bytes $source.Pixels $keepBytes) (Select-Bytes $noComposite[0].Pixels $keepBytes) |
                Should -BeGreaterThan 0 -Because 'the VAE round trip changes the unmasked pixels when they are not copied back'
        }
    }

    Context 'Parity with diffusers' {
        It 'gives expected.png of the inpaint case within the case tolerance with -NoComposite' {
            $case = Get-SDGoldenCase -Case inpaint
            $image = Invoke-SDInpaint -Image $imagePath -Mask $maskPath -Model $inpaintModel -NoComposite `
                -Prompt $case.call.prompt -NegativePrompt $case.call.negative_prompt -Steps $case.call.num_inference_steps `
                -GuidanceScale $case.call.guidance_scale -Strength $case.call.strength -Seed $case.seed
            $expected = Read-SDTestPng (Join-Path $casePath 'expected.png')
            $image.Width | Should -Be $case.call.width
            Get-SDPixelDifference $expected.Pixels $image.Pixels | Should -BeLessOrEqual (Get-SDGoldenTolerance -Case inpaint -Name image_uint8)
        }
    }

    Context 'Tiled decode' {
        It 'decodes a 576x512 repaint in 512x512 tiles with -TiledDecode and records it' {
            $large = (Import-SDImage $imagePath).Resize(576, 512)
            $output = @(Invoke-SDInpaint -Image $large -Mask $maskPath -Prompt 'a car' -Model $inpaintModel -Steps 1 -Seed 2 `
                -TiledDecode -Verbose -WarningAction SilentlyContinue 4>&1)
            $image = @($output | Where-Object { $_ -is [PSStableDiffusion.Engine.SDImage] })
            $verbose = @($output | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
            $image.Count | Should -Be 1
            ($image[0].Width, $image[0].Height) | Should -Be @(576, 512)
            $verbose | Should -Contain 'Tiled VAE decoder: 2 tiles of 512x512 pixels (overlap 128).'
            $image[0].Record.DecoderTileSize | Should -Be 64
        }
    }

    Context 'A mask of another size' {
        It 'is resized to the image with a warning, and the image is still repainted' {
            $smallMask = (Import-SDImage $maskPath).Resize(32, 32)
            $warnings = $null
            $image = @(Invoke-SDInpaint -Image $imagePath -Mask $smallMask -Prompt 'a car' -Model $inpaintModel -Steps 1 -Seed 2 `
                -WarningVariable warnings -WarningAction SilentlyContinue)
            $image.Count | Should -Be 1
            $image[0].Width | Should -Be $source.Width
            @($warnings).Count | Should -Be 1
            "$($warnings[0])" | Should -BeLike '*32x32 mask does not match the 64x64 image*resized*'
        }
    }

    Context 'Errors' {
        BeforeAll {
            $script:notImage = New-SDNotAnImageFile (Join-Path $TestDrive 'not-an-image.png')
        }

        BeforeEach {
            $script:outFolder = Join-Path $TestDrive "out-$([guid]::NewGuid().ToString('N'))"
        }

        It 'fails with <Id> (<Category>) for <Case>, and writes no file' -ForEach @(
            @{ Case = 'a text-to-image model'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Arguments = @{ Model = 'base' } }
            @{ Case = '-Strength 0'; Id = 'InvalidStrength'; Category = 'InvalidArgument'; Arguments = @{ Strength = 0 } }
            @{ Case = 'a strength that leaves no step'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Arguments = @{ Strength = 0.2; Steps = 2 } }
            @{ Case = 'an image file that is not an image'; Id = 'ParameterArgumentTransformationError'; Category = 'InvalidData'; Arguments = @{ Image = 'not-an-image' } }
            @{ Case = 'a mask file that is not an image'; Id = 'ParameterArgumentTransformationError'; Category = 'InvalidData'; Arguments = @{ Mask = 'not-an-image' } }
            @{ Case = 'an unknown scheduler'; Id = 'UnknownScheduler'; Category = 'InvalidArgument'; Arguments = @{ Scheduler = 'NoSuchScheduler' } }
        ) {
            $parameters = @{ Image = $imagePath; Mask = $maskPath; Prompt = 'x'; Model = $inpaintModel; Steps = 1; Seed = 1 }
            foreach ($key in $Arguments.Keys) { $parameters[$key] = $Arguments[$key] }
            if ($parameters.Model -eq 'base') { $parameters.Model = $baseModel }
            foreach ($key in 'Image', 'Mask') { if ($parameters[$key] -eq 'not-an-image') { $parameters[$key] = $notImage } }
            $record = Get-SDCommandError { Invoke-SDInpaint @parameters | Save-SDImage "$outFolder/" }
            $record | Should -Not -BeNullOrEmpty -Because 'the call must fail'
            $record.FullyQualifiedErrorId | Should -BeLike "$Id,PSStableDiffusion.InvokeSDInpaintCommand"
            $record.CategoryInfo.Category | Should -Be $Category
            $outFolder | Should -Not -Exist
        }

        It 'names the model''s variant in the ModelMismatch message' {
            $record = Get-SDCommandError { Invoke-SDInpaint $imagePath -Mask $maskPath -Prompt 'x' -Model $baseModel -Steps 1 }
            $record.Exception.Message | Should -BeLike '*txt2img model (4-channel UNet)*inpainting model (9-channel UNet*'
        }

        It 'reports a -LiteralPath file that is not an image as InvalidImage, and repaints the others' {
            $errors = $null
            $images = @(Invoke-SDInpaint -LiteralPath $notImage, $imagePath -Mask $maskPath -Prompt 'x' -Model $inpaintModel -Steps 1 -Seed 1 `
                -ErrorVariable errors -ErrorAction SilentlyContinue)
            $images.Count | Should -Be 1
            @($errors).Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'InvalidImage,PSStableDiffusion.InvokeSDInpaintCommand'
            $errors[0].CategoryInfo.Category | Should -Be 'InvalidData'
            $errors[0].TargetObject | Should -Be $notImage
        }

        It 'reports a piped file that is not an image, and repaints the others' {
            $folder = Join-Path $TestDrive 'mixed'
            $null = Copy-SDGoldenInput -Case inpaint -Name input_image.png -Destination (Join-Path $folder 'a.png')
            Copy-Item -LiteralPath $notImage -Destination (Join-Path $folder 'b.png')
            $errors = $null
            $images = @(Get-ChildItem -LiteralPath $folder -Filter *.png |
                Invoke-SDInpaint -Mask $maskPath -Prompt 'x' -Model $inpaintModel -Steps 1 -Seed 1 -ErrorVariable errors -ErrorAction SilentlyContinue)
            $images.Count | Should -Be 1
            @($errors).Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentTransformationError,PSStableDiffusion.InvokeSDInpaintCommand'
            $errors[0].Exception.Message | Should -BeLike '*b.png*'
        }

        # Objects the image transformation does not know are left for the binder, so they reach -LiteralPath by name.
        It 'binds a piped object with a FullName property to -LiteralPath' {
            $images = @([pscustomobject]@{ FullName = $imagePath } |
                Invoke-SDInpaint -Mask $maskPath -Prompt 'x' -Model $inpaintModel -Steps 1 -Seed 1 -ErrorAction Stop)
            $images.Count | Should -Be 1
            $images[0].Record.SourceImageHash | Should -Be (Import-SDImage $imagePath).ComputeContentHash()
        }
    }

    Context 'Tab completion of -Scheduler' {
        It 'offers the AUTOMATIC1111 and diffusers names' {
            $completions = (TabExpansion2 -inputScript ($line = 'Invoke-SDInpaint -Scheduler eul') -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Contain "'Euler a'"
            $completions | Should -Contain 'EulerDiscreteScheduler'
            $completions | Where-Object { $_ -notmatch '^''?Euler' } | Should -BeNullOrEmpty
        }
    }
}
