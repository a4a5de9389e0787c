# LoRAs through the cmdlets: <lora:name:…> prompt tags and -Lora on the tiny txt2img_eps_dpmpp model against
# diffusers' images with the LoRA merged (tests/golden/lora, made by tests/golden/tools/make_lora_cases.py), name lookup
# through -LoraPath and $env:SD_LORA, the record, its A1111 text and replay, errors, and parallel calls on one engine.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:loraFolder = Join-Path (Get-SDRepoRoot) 'tests/golden/lora'
    $script:cases = Get-Content -Raw (Join-Path $loraFolder 'cases.json') | ConvertFrom-Json
    $script:call = Get-SDGoldenCall -Case txt2img_eps_dpmpp
    $script:styleHash = (Get-SDLora style_kohya -LoraPath $loraFolder).Hash

    function Get-LoraCaseDifference([string] $Case, $Image) {
        $expected = Read-SDTestPng (Join-Path $loraFolder "$Case.png")
        $Image.Width | Should -Be $expected.Width
        Get-SDPixelDifference $expected.Pixels $Image.Pixels
    }
    function Get-LoraCaseTolerance([string] $Case) { $cases.cases.$Case.tolerances.image_uint8.max_abs }
}

Describe 'New-SDImage with LoRAs' {
    Context 'Parity with diffusers on merged weights' {
        It 'gives mult08.png for the tag lora:style_kohya:0.8 in the prompt' {
            $image = New-SDImage @call -Prompt "$($call.Prompt) <lora:style_kohya:0.8>" -LoraPath $loraFolder
            Get-LoraCaseDifference mult08 $image | Should -BeLessOrEqual (Get-LoraCaseTolerance mult08)
        }

        It 'gives the same for -Lora @{ style_kohya = 0.8 }, with the folder from $env:SD_LORA' {
            $saved = $env:SD_LORA
            try {
                $env:SD_LORA = $loraFolder
                $image = New-SDImage @call -Lora @{ style_kohya = 0.8 }
            }
            finally { $env:SD_LORA = $saved }
            Get-LoraCaseDifference mult08 $image | Should -BeLessOrEqual (Get-LoraCaseTolerance mult08)
        }

        It 'gives te_unet.png for the tag lora:style_kohya:te=0.5:unet=1.2' {
            $image = New-SDImage @call -Prompt "$($call.Prompt) <lora:style_kohya:te=0.5:unet=1.2>" -LoraPath $loraFolder
            Get-LoraCaseDifference te_unet $image | Should -BeLessOrEqual (Get-LoraCaseTolerance te_unet)
        }

        It 'adds a Get-SDLora object at its Multiplier to a prompt tag (two_loras.png)' {
            $subject = Get-SDLora subject_peft -LoraPath $loraFolder
            $subject.Multiplier = 0.6
            $image = New-SDImage @call -Prompt "$($call.Prompt) <lora:style_kohya:0.8>" -LoraPath $loraFolder -Lora $subject
            Get-LoraCaseDifference two_loras $image | Should -BeLessOrEqual (Get-LoraCaseTolerance two_loras)
        }
    }

    Context 'The record and replay' {
        BeforeAll {
            $script:withTag = New-SDImage @call -Prompt "$($call.Prompt) <lora:style_kohya:0.8>" -LoraPath $loraFolder
            $script:withParameter = New-SDImage @call -Lora @{ (Join-Path $loraFolder 'style_kohya.safetensors') = 0.8 }
        }

        It 'keeps the tag in the prompt and records the LoRA with its hash and multipliers' {
            $withTag.Record.Prompt | Should -BeLike '*<lora:style_kohya:0.8>'
            $use = @($withTag.Record.Loras)
            $use.Count | Should -Be 1
            $use[0].Name | Should -Be 'style_kohya'
            $use[0].Hash | Should -Be $styleHash
            $use[0].TextEncoderMultiplier | Should -Be 0.8
            $use[0].FromPrompt | Should -BeTrue
        }

        It 'writes Lora hashes into the AUTOMATIC1111 parameters text' {
            $path = Join-Path $TestDrive 'lora.png'
            $withParameter | Save-SDImage $path
            (Get-SDTestPngText $path)['parameters'] | Should -Match ([regex]::Escape("Lora hashes: ""style_kohya: $styleHash"""))
        }

        It 'warns when a replayed LoRA file is not the one the record names (another hash), and still applies it' {
            $image = New-SDImage @call -Lora @{ style_kohya = 0.8 } -LoraPath $loraFolder
            $use = $image.Record.Loras[0]
            $image.Record.Loras[0] = [PSStableDiffusion.Engine.Lora.LoraUse]::new($use.Name, '0123456789ab', $use.Path,
                $use.TextEncoderMultiplier, $use.UnetMultiplier, $use.FromPrompt)
            $again = $image | New-SDImage -Model $call.Model -WarningVariable warnings -WarningAction SilentlyContinue
            @($warnings | Where-Object { "$_" -like "*style_kohya*0123456789ab*" }).Count | Should -Be 1
            Get-SDPixelDifference $image.Pixels $again.Pixels | Should -Be 0
            $again.Record.Loras[0].Hash | Should -Be $styleHash
        }

        It 'replays a tag from the prompt and a -Lora from the record to the same pixels' {
            $again = $withTag | New-SDImage -Model $call.Model -LoraPath $loraFolder
            Get-SDPixelDifference $withTag.Pixels $again.Pixels | Should -Be 0
            $again = $withParameter | New-SDImage -Model $call.Model
            Get-SDPixelDifference $withParameter.Pixels $again.Pixels | Should -Be 0
            Get-SDPixelDifference $withTag.Pixels $withParameter.Pixels | Should -Be 0
        }
    }

    Context 'Replay on a machine where the LoRA file has another name (found by its recorded hash)' {
        BeforeAll {
            $script:tagged = New-SDImage @call -Prompt "$($call.Prompt) <lora:style_kohya:0.8>" -LoraPath $loraFolder
            $script:parameter = New-SDImage @call -Lora @{ style_kohya = 0.8 } -LoraPath $loraFolder
            # Another machine's LoRA folder: the same file under another name, and another LoRA.
            $script:renamed = New-Item -ItemType Directory (Join-Path $TestDrive 'renamed')
            Copy-Item (Join-Path $loraFolder 'style_kohya.safetensors') (Join-Path $renamed 'my_style_v2.safetensors')
            Copy-Item (Join-Path $loraFolder 'subject_peft.safetensors') (Join-Path $renamed 'a_subject.safetensors')
            $script:subjectHash = (Get-SDLora subject_peft -LoraPath $loraFolder).Hash

            function Split-Output($Output) {
                [pscustomobject]@{
                    Images  = @($Output | Where-Object { $_ -is [PSStableDiffusion.Engine.SDImage] })
                    Verbose = @($Output | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
                }
            }
        }

        It 'replays a prompt tag to the same pixels with the renamed file, and says so in -Verbose' {
            $out = Split-Output ($tagged | New-SDImage -Model $call.Model -LoraPath $renamed -Verbose 4>&1)
            $again = $out.Images[0]
            Get-SDPixelDifference $tagged.Pixels $again.Pixels | Should -Be 0
            Get-LoraCaseDifference mult08 $again | Should -BeLessOrEqual (Get-LoraCaseTolerance mult08)
            @($out.Verbose | Where-Object { $_ -like "*style_kohya*my_style_v2*$styleHash*" }).Count | Should -Be 1
            $again.Record.Loras[0].Name | Should -Be 'style_kohya'
            $again.Record.Loras[0].Hash | Should -Be $styleHash
            $again.Record.Loras[0].Path | Should -Be (Join-Path $renamed 'my_style_v2.safetensors')
        }

        It 'replays the A1111 text alone of a -Lora image (its tag, Lora hashes) to the same pixels, the LoRA once' {
            $saved = Join-Path $TestDrive 'parameter.png'
            $parameter | Save-SDImage $saved
            $a1111Only = Join-Path $TestDrive 'parameter-a1111-only.png'
            [PSStableDiffusionTests.Png]::WriteWithoutText($saved, 'sd-record', $a1111Only)
            $imported = Import-SDImage $a1111Only
            $imported.Record.Prompt | Should -Be "$($call.Prompt) <lora:style_kohya:0.8>"
            $again = $imported | New-SDImage -Model $call.Model -LoraPath $renamed
            @($again.Record.Loras).Count | Should -Be 1
            $again.Record.Loras[0].FromPrompt | Should -BeTrue
            $again.Record.Loras[0].Path | Should -Be (Join-Path $renamed 'my_style_v2.safetensors')
            Get-SDPixelDifference $parameter.Pixels $again.Pixels | Should -Be 0
            # The -Lora image is the prompt tag's image: the LoRA was applied once, either way.
            Get-SDPixelDifference $tagged.Pixels $parameter.Pixels | Should -Be 0
        }

        It 'replays a -Lora from the record, its file gone, by the hash in the renamed folder' {
            $moved = $parameter.Record.Clone()
            $use = $moved.Loras[0]
            $moved.Loras[0] = [PSStableDiffusion.Engine.Lora.LoraUse]::new($use.Name, $use.Hash,
                (Join-Path $TestDrive 'gone/style_kohya.safetensors'), $use.TextEncoderMultiplier, $use.UnetMultiplier, $false)
            $copy = [PSStableDiffusion.Engine.SDImage]::new($parameter.Width, $parameter.Height, $parameter.Pixels, $moved)
            $again = $copy | New-SDImage -Model $call.Model -LoraPath $renamed
            $again.Record.Loras[0].Path | Should -Be (Join-Path $renamed 'my_style_v2.safetensors')
            Get-SDPixelDifference $parameter.Pixels $again.Pixels | Should -Be 0
        }

        It 'uses the file of the name with a warning when no file has the recorded hash' {
            $other = New-Item -ItemType Directory (Join-Path $TestDrive 'other-version')
            Copy-Item (Join-Path $loraFolder 'subject_peft.safetensors') (Join-Path $other 'style_kohya.safetensors')
            $again = $tagged | New-SDImage -Model $call.Model -LoraPath $other -WarningVariable warnings -WarningAction SilentlyContinue
            @($warnings | Where-Object { "$_" -like "*style_kohya*$subjectHash*$styleHash*may differ*" }).Count | Should -Be 1
            $again.Record.Loras[0].Hash | Should -Be $subjectHash
        }

        It 'stops with LoraNotFound naming the name and the hash when neither is found' {
            $neither = New-Item -ItemType Directory (Join-Path $TestDrive 'neither')
            Copy-Item (Join-Path $loraFolder 'subject_peft.safetensors') (Join-Path $neither 'a_subject.safetensors')
            $e = Get-SDCommandError { $tagged | New-SDImage -Model $call.Model -LoraPath $neither }
            $e.FullyQualifiedErrorId | Should -BeLike 'LoraNotFound,*'
            $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $e.TargetObject | Should -Be 'style_kohya'
            $e.Exception.Message | Should -Match "'style_kohya'.*$styleHash"
        }
    }

    Context 'The negative prompt' {
        It 'reads a tag there as text, as AUTOMATIC1111 does: no lookup, no LoRA, a warning' {
            $tagged = $call.Clone()
            $tagged.NegativePrompt = 'blurry <lora:nothing_here:1>'
            $image = New-SDImage @tagged -LoraPath $loraFolder -WarningVariable warnings -WarningAction SilentlyContinue
            $image.Record.Loras | Should -BeNullOrEmpty
            $image.Record.NegativePrompt | Should -Be $tagged.NegativePrompt
            @($warnings | Where-Object { "$_" -like '*<lora:nothing_here:1>*' }).Count | Should -Be 1
        }
    }

    Context 'Errors' {
        It 'names a LoRA it cannot find (LoraNotFound)' {
            $e = Get-SDCommandError { New-SDImage @call -Prompt 'x <lora:nothing_here:1>' -LoraPath $loraFolder }
            $e.FullyQualifiedErrorId | Should -BeLike 'LoraNotFound,*'
            $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $e.TargetObject | Should -Be 'nothing_here'
        }

        It 'stops on a -LoraPath that does not exist (LoraPathNotFound), before any model loads' {
            $missing = Join-Path $TestDrive 'no-loras-here'
            $e = Get-SDCommandError { New-SDImage @call -LoraPath $missing }
            $e.FullyQualifiedErrorId | Should -BeLike 'LoraPathNotFound,*'
            $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $e.TargetObject | Should -Be $missing
        }

        It 'refuses a LoRA with layers the model lacks (UnknownLoraKey), naming them' {
            $e = Get-SDCommandError { New-SDImage @call -Lora @{ inpaint_kohya = 1 } -LoraPath $loraFolder }
            $e.FullyQualifiedErrorId | Should -BeLike 'UnknownLoraKey,*'
            $e.CategoryInfo.Category | Should -Be 'InvalidData'
            $e.Exception.Message | Should -Match 'lora_unet_'
        }

        It 'refuses a LoRA whose widths do not fit (LoraModelMismatch), naming file and layer' {
            # subject_peft was made for txt2img_eps_dpmpp (mid-block 64 wide); the inpainting model's is 32 wide.
            $inpaint = Get-SDGoldenModelPath -Case inpaint
            $image = Copy-SDGoldenInput -Case inpaint -Name input_image.png -Destination (Join-Path $TestDrive 'in.png')
            $mask = Copy-SDGoldenInput -Case inpaint -Name input_mask.png -Destination (Join-Path $TestDrive 'mask.png')
            $e = Get-SDCommandError { Invoke-SDInpaint -Image $image -Mask $mask -Prompt 'x' -Model $inpaint -Steps 1 -Lora @{ subject_peft = 1 } -LoraPath $loraFolder }
            $e.FullyQualifiedErrorId | Should -BeLike 'LoraModelMismatch,*'
            $e.Exception.Message | Should -Match 'subject_peft'
        }

        It 'refuses a multiplier that is not a number (InvalidPromptSyntax)' {
            $e = Get-SDCommandError { New-SDImage @call -Prompt 'x <lora:style_kohya:lots>' -LoraPath $loraFolder }
            $e.FullyQualifiedErrorId | Should -BeLike 'InvalidPromptSyntax,*'
        }

        It 'refuses a truncated file (InvalidSafeTensors) and writes no image' {
            $bytes = [IO.File]::ReadAllBytes((Join-Path $loraFolder 'style_kohya.safetensors'))
            $cut = Join-Path $TestDrive 'cut.safetensors'
            [IO.File]::WriteAllBytes($cut, [byte[]] $bytes[0..1000])
            $out = @()
            $e = Get-SDCommandError { $script:out = @(New-SDImage @call -Lora @{ $cut = 1 }) }
            $e.FullyQualifiedErrorId | Should -BeLike 'InvalidSafeTensors,*'
            $out.Count | Should -Be 0
        }
    }

    Context 'One engine, parallel calls' {
        It 'gives each of parallel calls with and without a LoRA its image alone' {
            $plain = New-SDImage @call
            $styled = New-SDImage @call -Lora @{ style_kohya = 0.8 } -LoraPath $loraFolder
            $module = (Get-Module PSStableDiffusion).Path
            $results = 1..4 | ForEach-Object -ThrottleLimit 4 -Parallel {
                Import-Module $using:module
                # The suite's pinned -Precision Float32 ($PSDefaultParameterValues) does not reach other runspaces.
                $parameters = $using:call
                if ($_ % 2) { [pscustomobject]@{ Lora = $true; Image = New-SDImage @parameters -Precision Float32 -Lora @{ style_kohya = 0.8 } -LoraPath $using:loraFolder } }
                else { [pscustomobject]@{ Lora = $false; Image = New-SDImage @parameters -Precision Float32 } }
            }
            @($results).Count | Should -Be 4
            foreach ($result in $results) {
                $alone = if ($result.Lora) { $styled } else { $plain }
                Get-SDPixelDifference $alone.Pixels $result.Image.Pixels | Should -Be 0
            }
        }

        It 'offers -Lora and -LoraPath on every generating cmdlet' {
            foreach ($name in 'New-SDImage', 'Invoke-SDInpaint', 'Resize-SDUpscale') {
                (Get-Command $name).Parameters.Keys | Should -Contain 'Lora'
                (Get-Command $name).Parameters.Keys | Should -Contain 'LoraPath'
            }
        }
    }
}
