# New-SDImage on the tiny golden models: parity with diffusers from the seed alone, determinism, the record,
# pipeline input, replay, errors, tab completion and the table view. Each generation takes seconds, so images that
# several tests only read come from New-SDTestImage (one generation per distinct call in the whole run).

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    # txt2img_v: the SD 2.1 768-v layout, 128x128, DDIM, v-prediction; diffusers made expected.png from this call.
    $script:call = Get-SDGoldenCall -Case txt2img_v
    $script:vModel = $call.Model
    # txt2img_eps_dpmpp: a smaller 2-level model (64x64 by default), for tests that need any model.
    $script:smallModel = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:golden = @(New-SDTestImage $call)

    function Test-SamePixels($Reference, $Difference) {
        [Linq.Enumerable]::SequenceEqual([byte[]] $Reference.Pixels, [byte[]] $Difference.Pixels)
    }
}

Describe 'New-SDImage' {
    Context 'Parity with diffusers' {
        It 'gives expected.png of txt2img_v within the case tolerance, from -Seed 42 alone' {
            $tolerance = Get-SDGoldenTolerance -Case txt2img_v -Name image_uint8
            $expected = Read-SDTestPng (Join-Path (Get-SDGoldenCasePath -Case txt2img_v) 'expected.png')
            $golden.Count | Should -Be 1
            $golden[0] | Should -BeOfType 'PSStableDiffusion.Engine.SDImage'
            $golden[0].Width | Should -Be $expected.Width
            $golden[0].Height | Should -Be $expected.Height
            Get-SDPixelDifference $expected.Pixels $golden[0].Pixels | Should -BeLessOrEqual $tolerance
        }

        It 'gives the same pixels for the same seed twice' {
            $again = New-SDImage @call
            Test-SamePixels $golden[0] $again | Should -BeTrue
        }
    }

    Context 'The record' {
        It 'records the call: prompt, negative prompt, seed, steps, guidance, scheduler, size' {
            $image = $golden[0]
            $image.Prompt | Should -BeExactly $call.Prompt
            $image.NegativePrompt | Should -BeExactly $call.NegativePrompt
            $image.Seed | Should -Be 42
            $image.Steps | Should -Be 4
            $image.GuidanceScale | Should -Be 7.5
            $image.Scheduler | Should -Be (Get-SDGoldenCase -Case txt2img_v).scheduler.class
            $image.Record.Width | Should -Be 128
            $image.Record.Height | Should -Be 128
            $image.PipelineKind | Should -Be 'Txt2Img'
            $image.ImageIndex | Should -Be 0
            $image.Record.SchedulerConfig['prediction_type'].ToString() | Should -Be 'v_prediction'
        }

        It 'records the model, its hash, dtype, device, timings and module version' {
            $record = $golden[0].Record
            $record.ModelPath | Should -Be $vModel
            $golden[0].Model | Should -Be 'model'
            $record.ModelHash | Should -Match '^[0-9a-f]{64}$'
            $record.DType | Should -Be 'float32'
            $record.Device | Should -Be 'cpu'
            @($record.Timings.Keys | Sort-Object) | Should -Be @('denoise', 'text_encoder', 'vae_decode')
            $record.Timings.Values | ForEach-Object { $_ | Should -BeGreaterThan 0 }
            $record.ModuleVersion | Should -Be $module.Version.ToString()
            $record.CreatedUtc | Should -Not -BeNullOrEmpty
        }
    }

    Context 'Pipeline input' {
        BeforeAll {
            $script:prompts = 'a red fox in the snow', 'a blue whale'
            $script:batch = @($prompts | New-SDImage -Model $smallModel -Count 2 -Steps 1)
        }

        It 'gives -Count images per piped prompt, in order' {
            $batch.Count | Should -Be 4
            @($batch.Prompt) | Should -Be @($prompts[0], $prompts[0], $prompts[1], $prompts[1])
            @($batch.ImageIndex) | Should -Be @(0, 1, 0, 1)
        }

        It 'draws one random seed per prompt when -Seed is omitted, and records it' {
            foreach ($image in $batch) { $image.Seed | Should -BeGreaterOrEqual 0; $image.Seed | Should -BeLessThan 4294967296 }
            $batch[1].Seed | Should -Be $batch[0].Seed
            $batch[3].Seed | Should -Be $batch[2].Seed
        }

        It 'gives different images within a batch' {
            Test-SamePixels $batch[0] $batch[1] | Should -BeFalse
        }
    }

    Context 'Replay: piping an SDImage into New-SDImage' {
        It 'makes the same pixels from an imported image' {
            $file = $golden[0] | Save-SDImage (Join-Path $TestDrive 'golden.png')
            $imported = Import-SDImage $file.FullName
            $replayed = @($imported | New-SDImage -Model $vModel)
            $replayed.Count | Should -Be 1
            $replayed[0].Seed | Should -Be 42
            $replayed[0].Steps | Should -Be 4
            Test-SamePixels $golden[0] $replayed[0] | Should -BeTrue
        }

        It 'lets parameters on the command line win over the piped record' {
            $image = New-SDTestImage @{ Prompt = 'a lighthouse'; Model = $smallModel; Steps = 1; Seed = 3 }
            $changed = $image | New-SDImage -Model $smallModel -Seed 4
            $changed.Seed | Should -Be 4
            $changed.Prompt | Should -Be 'a lighthouse'
            Test-SamePixels $image $changed | Should -BeFalse
        }

        It 'replays an image made with an AUTOMATIC1111 scheduler name (DPM++ 2M Karras)' {
            $image = New-SDTestImage @{ Prompt = 'a lighthouse'; Model = $smallModel; Steps = 2; Seed = 3; Scheduler = 'DPM++ 2M Karras' }
            $image.Record.SchedulerConfig['use_karras_sigmas'].GetValue[bool]() | Should -BeTrue
            $replayed = $image | New-SDImage -Model $smallModel
            $replayed.Record.SchedulerConfig['use_karras_sigmas'].GetValue[bool]() | Should -BeTrue
            Test-SamePixels $image $replayed | Should -BeTrue
        }

        It 'replays the second image of a -Count 2 batch' {
            $images = New-SDTestImage @{ Prompt = 'a lighthouse'; Model = $smallModel; Steps = 1; Seed = 5; Count = 2 }
            $replayed = @($images[1] | New-SDImage -Model $smallModel)
            $replayed.Count | Should -Be 1
            $replayed[0].ImageIndex | Should -Be 1
            Test-SamePixels $images[1] $replayed[0] | Should -BeTrue
        }
    }

    Context 'Tiled decode' {
        BeforeAll {
            # 576x512: a 72x64 latent, so the default 64-latent-pixel tiles give 2 decoder tiles.
            $script:tiledCall = @{ Prompt = 'a lighthouse'; Model = $smallModel; Steps = 1; Seed = 7; Width = 576; Height = 512 }
            $script:whole = New-SDTestImage $tiledCall
        }

        It 'decodes in 512x512 tiles with -TiledDecode, says so with -Verbose and records it' {
            $output = @(New-SDImage @tiledCall -TiledDecode -Verbose 4>&1)
            $tiled = @($output | Where-Object { $_ -is [PSStableDiffusion.Engine.SDImage] })
            $verbose = @($output | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
            $tiled.Count | Should -Be 1
            $verbose | Should -Contain 'Tiled VAE decoder: 2 tiles of 512x512 pixels (overlap 128).'
            $tiled[0].Record.DecoderTileSize | Should -Be 64
            $whole.Record.DecoderTileSize | Should -BeNullOrEmpty
            ($tiled[0].Width, $tiled[0].Height) | Should -Be @(576, 512)
            # Same denoised latents, decoded per tile: close to the whole decode, but not the same pixels.
            Test-SamePixels $whole $tiled[0] | Should -BeFalse
        }

        It 'replays a tiled image tiled, and -TiledDecode:$false overrides the record' {
            $tiled = New-SDTestImage ($tiledCall + @{ TiledDecode = $true })
            $replayed = $tiled | New-SDImage -Model $smallModel
            $replayed.Record.DecoderTileSize | Should -Be 64
            Test-SamePixels $tiled $replayed | Should -BeTrue
            $untiled = $tiled | New-SDImage -Model $smallModel -TiledDecode:$false
            $untiled.Record.DecoderTileSize | Should -BeNullOrEmpty
            Test-SamePixels $whole $untiled | Should -BeTrue
        }
    }

    Context 'Errors' {
        BeforeEach {
            $script:outFolder = Join-Path $TestDrive "out-$([guid]::NewGuid().ToString('N'))"
        }

        It 'reads (word:1.3) as a weight by default and literally with -PromptSyntax None; a plain prompt is the same either way' {
            $parameters = @{ Model = $smallModel; Steps = 1; Seed = 1; NegativePrompt = 'blurry' }
            $weighted = New-SDImage -Prompt 'a (red:1.3) fox' @parameters
            $literal = New-SDImage -Prompt 'a (red:1.3) fox' -PromptSyntax None @parameters
            Test-SamePixels $weighted $literal | Should -BeFalse
            $plain = New-SDImage -Prompt 'a red fox' @parameters
            $plainLiteral = New-SDImage -Prompt 'a red fox' -PromptSyntax None @parameters
            Test-SamePixels $plain $plainLiteral | Should -BeTrue
        }

        It 'fails with <Id> (<Category>) for <Case>, and writes no file' -ForEach @(
            @{ Case = 'a missing model folder'; Id = 'ModelNotFound'; Category = 'ObjectNotFound'; Arguments = @{ Model = 'no-such-model-folder' } }
            @{ Case = 'width 100'; Id = 'InvalidImageSize'; Category = 'InvalidArgument'; Arguments = @{ Width = 100 } }
            @{ Case = 'height 36'; Id = 'InvalidImageSize'; Category = 'InvalidArgument'; Arguments = @{ Height = 36 } }
            @{ Case = 'steps 0'; Id = 'ParameterArgumentValidationError'; Category = 'InvalidData'; Arguments = @{ Steps = 0 } }
            @{ Case = 'an unknown scheduler'; Id = 'UnknownScheduler'; Category = 'InvalidArgument'; Arguments = @{ Scheduler = 'NoSuchScheduler' } }
            @{ Case = 'float16 on the CPU'; Id = 'InvalidDevice'; Category = 'InvalidArgument'; Arguments = @{ Device = 'cpu'; Precision = 'Float16' } }
            @{ Case = 'a prompt of 10,000 tokens'; Id = 'PromptTooLong'; Category = 'InvalidArgument'; Arguments = @{ Prompt = (@('cat') * 10000) -join ' ' } }
            @{ Case = 'an unreadable weight'; Id = 'InvalidPromptSyntax'; Category = 'InvalidArgument'; Arguments = @{ NegativePrompt = 'a (fox:1.2.3)' } }
            @{ Case = 'a batch too large for memory'; Id = 'InsufficientMemory'; Category = 'ResourceUnavailable'; Arguments = @{ Width = 4096; Height = 4096; Count = 64 } }
        ) {
            $parameters = @{ Prompt = 'x'; Model = $smallModel; Steps = 1; Seed = 1 }
            foreach ($key in $Arguments.Keys) { $parameters[$key] = $Arguments[$key] }
            $record = $null
            try { New-SDImage @parameters | Save-SDImage "$outFolder/" } catch { $record = $_ }
            $record | Should -Not -BeNullOrEmpty -Because 'the call must fail'
            $record.FullyQualifiedErrorId | Should -BeLike "$Id,PSStableDiffusion.NewSDImageCommand"
            $record.CategoryInfo.Category | Should -Be $Category
            $outFolder | Should -Not -Exist
        }

        It 'says with -Verbose what the call needs, what memory is available on which device, and from where' {
            $verbose = @(New-SDImage 'x' -Model $smallModel -Steps 1 -Seed 1 -Verbose 4>&1 |
                Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
            $line = @($verbose | Where-Object { $_ -like 'Memory: *' })
            $line.Count | Should -Be 1
            $line[0] | Should -Match '^Memory: this call needs about [0-9.]+ GiB at its peak \((UNet|decoder)\); '
            $expected = [PSStableDiffusion.Engine.Runtime.AvailableMemory]::CpuSource
            $line[0] | Should -BeLike "*GiB is available on cpu ($expected)."
        }

        It 'refuses a call that cannot fit in memory before it starts, saying what would fit in PowerShell terms' {
            $record = $null
            # 64 images of 4096x4096: even the tiny model's decoder would need hundreds of GiB.
            try { New-SDImage 'x' -Model $smallModel -Steps 1 -Seed 1 -Width 4096 -Height 4096 -Count 64 } catch { $record = $_ }
            $record.FullyQualifiedErrorId | Should -BeLike 'InsufficientMemory,*'
            $record.Exception.Estimate.PeakBytes | Should -BeGreaterThan $record.Exception.AvailableBytes
            $record.ErrorDetails.Message | Should -Match '^This call needs about [0-9.]+ GiB at its peak .* but only [0-9.]+ GiB is available\.$'
            $size = $record.Exception.FittingSize
            $record.ErrorDetails.RecommendedAction | Should -BeLike "What would fit: *-Width $($size.Item1) -Height $($size.Item2) or smaller*Clear-SDEngine*SD_MEMORY_CHECK*"
            $size.Item1 | Should -BeLessThan 4096
        }

        It 'reports a hub model that cannot be fetched offline as HubUnavailable (ConnectionError), naming the id' {
            $saved = @{ HF_HUB_OFFLINE = $env:HF_HUB_OFFLINE; HF_HUB_CACHE = $env:HF_HUB_CACHE }
            try {
                $env:HF_HUB_OFFLINE = '1'
                $env:HF_HUB_CACHE = Join-Path $TestDrive 'empty-hub-cache'
                $record = Get-SDCommandError { New-SDImage 'x' -Model 'no-such-owner/no-such-model' -Steps 1 -Seed 1 }
            }
            finally {
                foreach ($name in $saved.Keys) { Set-Item "env:$name" -Value $saved[$name] -ErrorAction Ignore; if ($null -eq $saved[$name]) { Remove-Item "env:$name" -ErrorAction Ignore } }
            }
            $record | Should -Not -BeNullOrEmpty
            $record.FullyQualifiedErrorId | Should -BeLike 'HubUnavailable,PSStableDiffusion.NewSDImageCommand'
            $record.CategoryInfo.Category | Should -Be 'ConnectionError'
            $record.Exception.Message | Should -BeLike '*no-such-owner/no-such-model*'
        }

        It 'names the valid schedulers in the UnknownScheduler message' {
            $record = $null
            try { New-SDImage 'x' -Model $smallModel -Scheduler 'NoSuchScheduler' } catch { $record = $_ }
            $record.Exception.Message | Should -BeLike "*'NoSuchScheduler'*DPM++ 2M Karras*"
            $record.TargetObject | Should -Be 'NoSuchScheduler'
        }

        It 'fails with InvalidSafeTensors for <Case>, and writes no file' -ForEach @(
            @{ Case = 'a UNet file truncated in its data'; Damage = 'TruncateData' }
            @{ Case = 'a UNet file truncated in its header'; Damage = 'TruncateHeader' }
            @{ Case = 'a UNet header whose offsets run past the end'; Damage = 'OffsetsPastEnd' }
        ) {
            $modelCopy = Copy-SDGoldenModel -Case txt2img_eps_dpmpp -Destination (Join-Path $TestDrive "model-$Damage")
            $weights = Join-Path $modelCopy 'unet/diffusion_pytorch_model.safetensors'
            $bytes = [IO.File]::ReadAllBytes($weights)
            $headerLength = [BitConverter]::ToInt64($bytes, 0)
            $dataLength = $bytes.Length - 8 - $headerLength
            $file = [IO.File]::Open($weights, 'Open', 'ReadWrite')
            try {
                switch ($Damage) {
                    'TruncateData' { $file.SetLength(8 + $headerLength + [Math]::Floor($dataLength / 2)) }
                    'TruncateHeader' { $file.SetLength(8 + [Math]::Floor($headerLength / 2)) }
                    'OffsetsPastEnd' {
                        # The data stays whole; the tensor that ends the data section now claims 4096 bytes more.
                        $header = [Text.Encoding]::UTF8.GetString($bytes, 8, $headerLength)
                        $ends = [regex]::Matches($header, '"data_offsets"\s*:\s*\[\s*\d+\s*,\s*(\d+)\s*\]') | ForEach-Object { $_.Groups[1] }
                        $last = $ends | Sort-Object { [long] $_.Value } | Select-Object -Last 1
                        [long] $last.Value | Should -Be $dataLength
                        $damaged = [Text.Encoding]::UTF8.GetBytes($header.Remove($last.Index, $last.Length).Insert($last.Index, [string] ($dataLength + 4096)))
                        $file.SetLength(0)
                        $length = [BitConverter]::GetBytes([long] $damaged.Length)
                        $file.Write($length, 0, $length.Length)
                        $file.Write($damaged, 0, $damaged.Length)
                        $file.Write($bytes, 8 + $headerLength, $dataLength)
                    }
                }
            }
            finally { $file.Dispose() }

            $record = $null
            try { New-SDImage 'x' -Model $modelCopy -Steps 1 | Save-SDImage "$outFolder/" } catch { $record = $_ }
            $record | Should -Not -BeNullOrEmpty -Because 'the call must fail'
            $record.FullyQualifiedErrorId | Should -BeLike 'InvalidSafeTensors,PSStableDiffusion.NewSDImageCommand'
            $record.CategoryInfo.Category | Should -Be 'InvalidData'
            $record.Exception.Message | Should -BeLike '*diffusion_pytorch_model.safetensors*'
            $outFolder | Should -Not -Exist
            @(Get-SDEngine -Model $modelCopy) | Should -BeNullOrEmpty -Because 'a failed load leaves nothing in the cache'
        }
    }

    Context 'Tab completion of -Scheduler' {
        It 'offers the DPM++ sampler names, quoted' {
            $completions = (TabExpansion2 -inputScript ($line = 'New-SDImage -Scheduler DPM') -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Contain "'DPM++ 2M Karras'"
            $completions | Should -Contain "'DPM++ 2M'"
            $completions | Should -Contain 'DPMSolverMultistepScheduler'
        }

        It 'offers class names with and without the Scheduler suffix, and sampler names' {
            $completions = (TabExpansion2 -inputScript ($line = 'New-SDImage -Scheduler eul') -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Contain 'EulerDiscreteScheduler'
            $completions | Should -Contain 'EulerDiscrete'
            $completions | Should -Contain 'EulerAncestralDiscreteScheduler'
            $completions | Should -Contain "'Euler a'"
            $completions | Where-Object { $_ -notmatch '^''?Euler' } | Should -BeNullOrEmpty
        }
    }

    Context 'Formatting' {
        It 'is shown as a table of its settings, without the pixels' {
            $text = $golden[0] | Format-Table | Out-String -Width 160
            $text | Should -Match 'Seed\s+Steps\s+Scheduler\s+Size\s+Kind\s+Prompt\s+Model'
            $text | Should -Match '42\s+4\s+DDIM\s+128x128\s+txt2img\s+A photograph of an astronaut'
            $text | Should -Match '…\s+model'
            $text | Should -Not -Match 'Pixels'
        }

        It 'is shown as a list of its settings by Format-List' {
            $text = $golden[0] | Format-List | Out-String -Width 160
            $text | Should -Match 'NegativePrompt\s+: blurry, low quality'
            $text | Should -Match 'Size\s+: 128x128'
            $text | Should -Match 'Device\s+: cpu \(float32\)'
            $text | Should -Not -Match 'Pixels'
        }
    }
}
