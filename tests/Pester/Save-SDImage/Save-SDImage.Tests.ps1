# Save-SDImage: the PNG round trip (pixels and record) on a generated image, path templates, the default file name,
# -WhatIf, -Force and the errors. Tests that need no real generation save small images built in memory.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:call = Get-SDGoldenCall -Case txt2img_v
    $script:golden = @(New-SDTestImage $call)[0]

    # An 8x8 image with a record, made without a model.
    function New-TestImage([long] $Seed = 7, [int] $Index = 0, [string] $Prompt = 'a test', [int] $Fill = 0) {
        $record = [PSStableDiffusion.Engine.GenerationRecord]@{
            Prompt = $Prompt; Seed = $Seed; Steps = 3; GuidanceScale = 7.5; Scheduler = 'DDIMScheduler'; Width = 8; Height = 8
            ModelPath = '/models/sd21-test'; ImageIndex = $Index; PipelineKind = 'Txt2Img'
            CreatedUtc = [datetimeoffset]::new(2024, 5, 6, 7, 8, 9, [timespan]::Zero)
        }
        $pixels = [byte[]]::new(8 * 8 * 3)
        for ($i = 0; $i -lt $pixels.Length; $i++) { $pixels[$i] = ($i * 7 + $Fill) % 256 }
        [PSStableDiffusion.Engine.SDImage]::new(8, 8, $pixels, $record)
    }
}

Describe 'Save-SDImage' {
    Context 'Round trip of a generated image' {
        BeforeAll {
            $script:file = $golden | Save-SDImage (Join-Path $TestDrive 'golden.png')
            $script:imported = Import-SDImage $file.FullName
        }

        It 'writes the file and returns its FileInfo' {
            $file | Should -BeOfType [IO.FileInfo]
            $file.FullName | Should -Be (Join-Path $TestDrive 'golden.png')
            $file.FullName | Should -Exist
        }

        It 'stores the pixels exactly (read with the tests'' own PNG decoder)' {
            $png = Read-SDTestPng $file.FullName
            $png.Width | Should -Be $golden.Width
            $png.Height | Should -Be $golden.Height
            Get-SDPixelDifference $golden.Pixels $png.Pixels | Should -Be 0
        }

        It 'is read back by Import-SDImage with the same pixels' {
            [Linq.Enumerable]::SequenceEqual([byte[]] $imported.Pixels, [byte[]] $golden.Pixels) | Should -BeTrue
            $imported.SourcePath | Should -Be $file.FullName
        }

        It 'keeps the record: <_>' -ForEach @('Prompt', 'NegativePrompt', 'Seed', 'Steps', 'GuidanceScale', 'Scheduler', 'Width', 'Height',
            'ModelPath', 'ModelHash', 'DType', 'Device', 'ModuleVersion', 'PipelineKind', 'ImageIndex', 'CreatedUtc') {
            $imported.Record.$_ | Should -Be $golden.Record.$_
            $imported.Record.$_ | Should -Not -BeNullOrEmpty -Because "a generated image records its $_"
        }

        It 'keeps the record: timings and scheduler config' {
            @($imported.Record.Timings.Keys | Sort-Object) | Should -Be @($golden.Record.Timings.Keys | Sort-Object)
            foreach ($key in $golden.Record.Timings.Keys) { $imported.Record.Timings[$key] | Should -Be $golden.Record.Timings[$key] }
            $imported.Record.SchedulerConfig.ToJsonString() | Should -Be $golden.Record.SchedulerConfig.ToJsonString()
        }

        It 'writes AUTOMATIC1111''s parameters text and the full JSON record' {
            $texts = Get-SDTestPngText $file.FullName
            $texts['parameters'] | Should -BeLike "$($call.Prompt)`nNegative prompt: $($call.NegativePrompt)`nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 128x128, Model hash: $($golden.Record.ModelHash.Substring(0, 10)), Model: model*"
            ($texts['sd-record'] | ConvertFrom-Json).seed | Should -Be 42
        }

        It 'sets the saved image''s SourcePath' {
            $golden.SourcePath | Should -Not -BeNullOrEmpty
        }
    }

    Context 'Paths' {
        It 'writes nothing with -WhatIf' {
            $target = Join-Path $TestDrive 'whatif/image.png'
            $result = New-TestImage | Save-SDImage $target -WhatIf
            $result | Should -BeNullOrEmpty
            $target | Should -Not -Exist
            Split-Path $target | Should -Not -Exist
        }

        It 'uses {Date}-{Time}-{Seed}-{Index}.png in an existing folder' {
            $folder = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'existing')
            $file = New-TestImage -Seed 123 -Index 2 | Save-SDImage $folder.FullName
            $created = [datetimeoffset]::new(2024, 5, 6, 7, 8, 9, [timespan]::Zero).ToLocalTime()
            $file.Name | Should -Be ('{0:yyyyMMdd}-{0:HHmmss}-123-2.png' -f $created.DateTime)
            $file.DirectoryName | Should -Be $folder.FullName
        }

        It 'creates a folder named with a trailing slash and uses the default name' {
            $file = New-TestImage -Seed 9 | Save-SDImage "$TestDrive/new-folder/"
            $file.Directory.Name | Should -Be 'new-folder'
            $file.Name | Should -Match '^\d{8}-\d{6}-9-0\.png$'
        }

        It 'expands {Seed} and {Index} for each image of a batch' {
            $files = @(New-TestImage -Seed 5 -Index 0 -Fill 1), @(New-TestImage -Seed 5 -Index 1 -Fill 2) | ForEach-Object { $_ } |
                Save-SDImage (Join-Path $TestDrive 'batch/{Seed}-{Index}.png')
            @($files.Name) | Should -Be @('5-0.png', '5-1.png')
            (Import-SDImage $files[1].FullName).ImageIndex | Should -Be 1
        }

        It 'expands the other tokens, case-insensitively, making them safe for a file name' {
            $file = New-TestImage -Prompt 'a cat: "tabby"/grey?' | Save-SDImage (Join-Path $TestDrive '{prompt}_{MODEL}_{Steps}_{Guidance}_{Scheduler}_{Width}x{Height}_{Kind}_{Date}.png')
            $file.Name | Should -Be 'a cat_ _tabby__grey__sd21-test_3_7.5_DDIMScheduler_8x8_txt2img_20240506.png'.Replace('20240506', ('{0:yyyyMMdd}' -f [datetimeoffset]::new(2024, 5, 6, 7, 8, 9, [timespan]::Zero).ToLocalTime().DateTime))
        }

        It 'expands {Hash} to the first 10 hex digits of the pixels'' hash' {
            $image = New-TestImage
            $file = $image | Save-SDImage (Join-Path $TestDrive 'hash-{Hash}.png')
            $file.Name | Should -Be "hash-$($image.ComputeContentHash().Substring(0, 10)).png"
        }

        It 'overwrites an existing file with -Force' {
            $target = Join-Path $TestDrive 'force.png'
            New-TestImage -Fill 1 | Save-SDImage $target | Out-Null
            New-TestImage -Fill 2 | Save-SDImage $target -Force | Out-Null
            (Read-SDTestPng $target).Pixels[0] | Should -Be 2
        }
    }

    Context 'Errors' {
        It 'refuses to overwrite an existing file without -Force (FileExists), and leaves it as it was' {
            $target = Join-Path $TestDrive 'exists.png'
            New-TestImage -Fill 1 | Save-SDImage $target | Out-Null
            $before = [IO.File]::ReadAllBytes($target)
            $result = New-TestImage -Fill 2 | Save-SDImage $target -ErrorVariable errors -ErrorAction SilentlyContinue
            $result | Should -BeNullOrEmpty
            $errors.Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'FileExists,PSStableDiffusion.SaveSDImageCommand'
            $errors[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            [Linq.Enumerable]::SequenceEqual([IO.File]::ReadAllBytes($target), $before) | Should -BeTrue
        }

        It 'rejects an unknown template token (InvalidPathTemplate) and writes nothing' {
            $folder = Join-Path $TestDrive 'bad-token'
            $record = $null
            try { New-TestImage | Save-SDImage "$folder/{Seed}-{Colour}.png" } catch { $record = $_ }
            $record.FullyQualifiedErrorId | Should -BeLike 'InvalidPathTemplate,PSStableDiffusion.SaveSDImageCommand'
            $record.CategoryInfo.Category | Should -Be 'InvalidArgument'
            $record.Exception.Message | Should -BeLike '*{Colour}*{Seed}*'
            $folder | Should -Not -Exist
        }

        It 'rejects two images of one call that get the same name (DuplicateOutputPath), saving the first' {
            $target = Join-Path $TestDrive 'dup/{Seed}.png'
            $files = (New-TestImage -Index 0), (New-TestImage -Index 1) | Save-SDImage $target -ErrorVariable errors -ErrorAction SilentlyContinue
            @($files).Count | Should -Be 1
            $errors.Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'DuplicateOutputPath,PSStableDiffusion.SaveSDImageCommand'
            $errors[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        }

        It 'only writes PNG (UnsupportedImageFormat)' {
            $target = Join-Path $TestDrive 'image.jpg'
            New-TestImage | Save-SDImage $target -ErrorVariable errors -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'UnsupportedImageFormat,PSStableDiffusion.SaveSDImageCommand'
            $target | Should -Not -Exist
        }
    }
}
