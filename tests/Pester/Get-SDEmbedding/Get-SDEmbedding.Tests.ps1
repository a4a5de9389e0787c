# Get-SDEmbedding over tests/golden/textual_inversion (made by tests/golden/tools/make_textual_inversion.py): every
# format listed with its vectors, width, fit and hash; $env:SD_EMBEDDINGS; files that must be refused.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:root = Join-Path (Get-SDRepoRoot) 'tests/golden/textual_inversion'
    $script:files = Join-Path $root 'files'
    $script:bad = Join-Path $root 'bad'
    $script:fixture = Get-Content -Raw (Join-Path $root 'prompts.json') | ConvertFrom-Json
    $script:savedVariable = $env:SD_EMBEDDINGS
    Remove-Item env:SD_EMBEDDINGS -ErrorAction Ignore
}

AfterAll {
    if ($null -ne $savedVariable) { $env:SD_EMBEDDINGS = $savedVariable }
}

Describe 'Get-SDEmbedding' {
    It 'lists each file once, with its vectors, width, the short SHA-256 and the file''s full hash' {
        $listed = @(Get-SDEmbedding -Path $files -TextEncoderWidth 8)
        $names = @(Get-ChildItem $files -File | ForEach-Object BaseName | Sort-Object)
        @($listed.Name | Sort-Object) | Should -Be $names
        foreach ($e in $listed) {
            $e | Should -BeOfType 'PSStableDiffusion.Engine.Text.Embeddings.EmbeddingInfo'
            $e.Width | Should -Be 8
            $e.Fits | Should -BeTrue
            $e.Sha256 | Should -Be $fixture.files_sha256.((Split-Path $e.Path -Leaf))
            $e.Hash | Should -Be $e.Sha256.Substring(0, 12)
        }
        ($listed | Where-Object Name -EQ 'a1111-style').Vectors | Should -Be 2
        ($listed | Where-Object Name -EQ 'old-paramdict').Vectors | Should -Be 3
        ($listed | Where-Object Name -EQ 'concept').Vectors | Should -Be 1
    }

    It 'says an embedding does not fit SD 2.x (1024 wide), with a warning naming the file' {
        $listed = @(Get-SDEmbedding 'concept' -Path $files -WarningVariable warnings -WarningAction SilentlyContinue)
        $listed.Count | Should -Be 1
        $listed[0].Fits | Should -BeFalse
        $warnings.Count | Should -Be 1
        "$($warnings[0])" | Should -BeLike '*concept.bin*8 wide, not 1024*EmbeddingWidthMismatch*'
    }

    It 'filters by name with wildcards, case-insensitively' {
        @(Get-SDEmbedding 'BAD-*' -Path $files -TextEncoderWidth 8).Name | Sort-Object | Should -Be @('bad-prompt', 'bad-prompt-v2')
    }

    It 'reads the folders of $env:SD_EMBEDDINGS after -Path, skipping entries that do not exist with a warning' {
        try {
            $env:SD_EMBEDDINGS = @($files, (Join-Path $TestDrive 'nowhere')) -join [IO.Path]::PathSeparator
            $listed = @(Get-SDEmbedding -TextEncoderWidth 8 -WarningVariable warnings -WarningAction SilentlyContinue)
        }
        finally { Remove-Item env:SD_EMBEDDINGS -ErrorAction Ignore }
        $listed.Count | Should -Be (Get-ChildItem $files -File).Count
        "$warnings" | Should -BeLike '*SD_EMBEDDINGS*nowhere*'
    }

    It 'refuses a .pt whose pickle calls a global without running it, and a truncated file, and lists the rest' {
        $listed = @(Get-SDEmbedding -Path $bad -TextEncoderWidth 8 -ErrorVariable failures -ErrorAction SilentlyContinue -WarningVariable warnings -WarningAction SilentlyContinue)
        $listed.Name | Should -Be @('sd15-style')
        $listed[0].Width | Should -Be 768
        "$warnings" | Should -BeLike '*sd15-style.safetensors*768 wide*'
        $ids = @($failures | ForEach-Object { "$($_.FullyQualifiedErrorId)|$($_.TargetObject)" })
        $ids | Should -Contain "UnsafeCheckpoint,PSStableDiffusion.GetSDEmbeddingCommand|$(Join-Path $bad 'calls-global.pt')"
        $ids | Should -Contain "InvalidEmbedding,PSStableDiffusion.GetSDEmbeddingCommand|$(Join-Path $bad 'truncated.pt')"
        $ids | Should -Contain "InvalidEmbedding,PSStableDiffusion.GetSDEmbeddingCommand|$(Join-Path $bad 'two-terms.pt')"
        ($failures | Where-Object { $_.FullyQualifiedErrorId -like 'UnsafeCheckpoint,*' }).CategoryInfo.Category | Should -Be 'SecurityError'
    }

    It 'fails with EmbeddingPathNotFound (ObjectNotFound) for a path that does not exist' {
        $missing = Join-Path $TestDrive 'no-such-folder'
        $record = Get-SDCommandError { Get-SDEmbedding -Path $missing }
        $record.FullyQualifiedErrorId | Should -Be 'EmbeddingPathNotFound,PSStableDiffusion.GetSDEmbeddingCommand'
        $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $record.TargetObject | Should -Be $missing
    }
}
