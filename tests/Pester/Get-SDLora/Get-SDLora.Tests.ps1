# Get-SDLora: the golden LoRA files (tests/golden/lora) listed with format, rank, alpha, parts, model family and hash;
# name lookup through -LoraPath and $env:SD_LORA; LoraNotFound; a bad file is a non-terminating error.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:loraFolder = Join-Path (Get-SDRepoRoot) 'tests/golden/lora'
    # The folder also holds io.safetensors (the fixtures' tensors): not a LoRA, reported and skipped.
    $script:all = @(Get-SDLora -LoraPath $loraFolder -ErrorVariable listErrors -ErrorAction SilentlyContinue)
    $script:listErrors = $listErrors
}

Describe 'Get-SDLora' {
    It 'lists the six golden LoRA files' {
        $all.Count | Should -Be 6
        $all | ForEach-Object { $_ | Should -BeOfType 'PSStableDiffusion.Engine.Lora.LoraInfo' }
    }

    It 'reports the one file that is not a LoRA (io.safetensors) as UnknownLoraKey and lists the rest' {
        $listErrors.Count | Should -Be 1
        $listErrors[0].FullyQualifiedErrorId | Should -BeLike 'UnknownLoraKey,*'
        $listErrors[0].TargetObject | Should -BeLike '*io.safetensors'
    }

    It 'describes the kohya LoCon file: format, rank 4, alpha 2, UNet + text encoder + conv' {
        $style = $all | Where-Object Name -EQ 'style_kohya'
        $style.Format | Should -Be 'Kohya'
        $style.Rank | Should -Be 4
        $style.Alpha | Should -Be 2
        $style.Parts | Should -Be @('UNet', 'TextEncoder', 'Conv')
        $style.Hash | Should -Match '^[0-9a-f]{12}$'
        $style.Layers | Should -Be 211
    }

    It 'describes the PEFT file: no alpha, attention only' {
        $subject = $all | Where-Object Name -EQ 'subject_peft'
        $subject.Format | Should -Be 'Peft'
        $subject.Alpha | Should -BeNullOrEmpty
        $subject.Parts | Should -Be @('UNet', 'TextEncoder')
        ($all | Where-Object Name -EQ 'subject_old_diffusers').Format | Should -Be 'DiffusersOld'
    }

    It 'says which model family the widths fit (the tiny models are neither SD 1.x nor 2.x)' {
        ($all | Where-Object Name -EQ 'style_kohya').BaseModel | Should -Be 'unknown (8 wide)'
    }

    It 'finds a name in $env:SD_LORA, with wildcards' {
        $saved = $env:SD_LORA
        try {
            $env:SD_LORA = $loraFolder
            @(Get-SDLora 'subject*').Name | Should -Be @('subject_old_diffusers', 'subject_peft')
        }
        finally { $env:SD_LORA = $saved }
    }

    It 'takes a file as -LoraPath, and stops on a -LoraPath that does not exist (LoraPathNotFound)' {
        @(Get-SDLora -LoraPath (Join-Path $loraFolder 'subject_peft.safetensors')).Name | Should -Be @('subject_peft')
        $missing = Join-Path $TestDrive 'no-such-folder'
        $e = Get-SDCommandError { Get-SDLora -LoraPath $missing }
        $e.FullyQualifiedErrorId | Should -BeLike 'LoraPathNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $e.TargetObject | Should -Be $missing
    }

    It 'warns about an $env:SD_LORA entry that does not exist and lists the others' {
        $saved = $env:SD_LORA
        try {
            $missing = Join-Path $TestDrive 'gone'
            $env:SD_LORA = $missing + [IO.Path]::PathSeparator + $loraFolder
            $found = @(Get-SDLora 'subject_peft' -WarningVariable warnings -WarningAction SilentlyContinue)
        }
        finally { $env:SD_LORA = $saved }
        $found.Name | Should -Be @('subject_peft')
        @($warnings).Count | Should -Be 1
        "$($warnings[0])" | Should -BeLike "*SD_LORA*$missing*"
    }

    It 'reports a name it cannot find as LoraNotFound' {
        $e = Get-SDCommandError { Get-SDLora nothing_here -LoraPath $loraFolder }
        $e.FullyQualifiedErrorId | Should -BeLike 'LoraNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'reports a bad file as a non-terminating error and lists the rest' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'mixed')
        Copy-Item (Join-Path $loraFolder 'subject_peft.safetensors') $folder
        [IO.File]::WriteAllBytes((Join-Path $folder 'broken.safetensors'), [byte[]] (1..20))
        $listed = @(Get-SDLora -LoraPath $folder -ErrorVariable errors -ErrorAction SilentlyContinue)
        $listed.Name | Should -Be @('subject_peft')
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'InvalidSafeTensors,*'
    }
}
