# Import-SDImage: records of our PNGs, plain images, wildcards and Get-ChildItem input, and the errors.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:expectedPng = Join-Path (Get-SDGoldenCasePath -Case txt2img_v) 'expected.png'

    $script:folder = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'images')
    foreach ($seed in 1, 2) {
        $record = [PSStableDiffusion.Engine.GenerationRecord]@{ Prompt = "image $seed"; Seed = $seed; Steps = 2; Width = 8; Height = 8 }
        [PSStableDiffusion.Engine.SDImage]::new(8, 8, [byte[]]::new(192), $record) | Save-SDImage (Join-Path $folder 'img-{Seed}.png') | Out-Null
    }
    Set-Content -LiteralPath (Join-Path $folder 'notes.txt') -Value 'not an image'
}

Describe 'Import-SDImage' {
    It 'reads a PNG without a record with its size and an empty record' {
        $image = Import-SDImage $expectedPng
        $image.Width | Should -Be 128
        $image.Height | Should -Be 128
        $image.Prompt | Should -BeExactly ''
        $image.Record.Width | Should -Be 128
        Get-SDPixelDifference $image.Pixels (Read-SDTestPng $expectedPng).Pixels | Should -Be 0
        $image.SourcePath | Should -Be $expectedPng
    }

    It 'reads the records of the PNGs that Save-SDImage wrote' {
        $images = @(Import-SDImage (Join-Path $folder 'img-*.png') | Sort-Object Seed)
        @($images.Seed) | Should -Be @(1, 2)
        @($images.Prompt) | Should -Be @('image 1', 'image 2')
    }

    It 'reads the files that Get-ChildItem pipes in (-LiteralPath by PSPath)' {
        $images = @(Get-ChildItem -LiteralPath $folder -Filter '*.png' | Import-SDImage)
        $images.Count | Should -Be 2
        $images.SourcePath | ForEach-Object { $_ | Should -BeLike (Join-Path $folder 'img-*.png') }
    }

    It 'reports a non-image file as InvalidImage and still reads the others' {
        $images = @(Import-SDImage (Join-Path $folder 'notes.txt'), (Join-Path $folder 'img-1.png') -ErrorVariable errors -ErrorAction SilentlyContinue)
        $images.Count | Should -Be 1
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'InvalidImage,PSStableDiffusion.ImportSDImageCommand'
        $errors[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $errors[0].TargetObject | Should -Be (Join-Path $folder 'notes.txt')
    }

    It 'reports a truncated PNG as InvalidImage' {
        $bytes = [IO.File]::ReadAllBytes((Join-Path $folder 'img-1.png'))
        $broken = Join-Path $TestDrive 'broken.png'
        [IO.File]::WriteAllBytes($broken, $bytes[0..40])
        Import-SDImage $broken -ErrorVariable errors -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'InvalidImage,PSStableDiffusion.ImportSDImageCommand'
    }

    It 'reports a missing file as FileNotFound (<Parameter>)' -ForEach @(@{ Parameter = 'Path' }, @{ Parameter = 'LiteralPath' }) {
        $arguments = @{ $Parameter = Join-Path $TestDrive 'missing.png' }
        Import-SDImage @arguments -ErrorVariable errors -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'FileNotFound,PSStableDiffusion.ImportSDImageCommand'
        $errors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'reads nothing, quietly, for a wildcard that matches nothing' {
        Import-SDImage (Join-Path $folder 'none-*.png') -ErrorVariable errors | Should -BeNullOrEmpty
        $errors.Count | Should -Be 0
    }
}
