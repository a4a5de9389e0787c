# Prompts through New-SDImage beyond the syntax itself: a replay reads prompts with the recorded -PromptSyntax, and
# textual-inversion embeddings (tests/golden/textual_inversion): the record and the A1111 parameters name the embedding
# and its hash, a replay re-applies it or names the missing file, bad files fail with their own error ids and write
# nothing. Parity with diffusers is checked in the engine's PromptImageGoldenTests and TextualInversionTests.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:root = Join-Path (Get-SDRepoRoot) 'tests/golden/textual_inversion'
    $script:files = Join-Path $root 'files'
    $script:bad = Join-Path $root 'bad'
    $script:model = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:savedVariable = $env:SD_EMBEDDINGS
    Remove-Item env:SD_EMBEDDINGS -ErrorAction Ignore
    $script:call = @{ Prompt = 'a lighthouse'; NegativePrompt = 'lowres, a1111-style, blurry'; Model = $model; Steps = 2; Seed = 7 }
    $script:withEmbedding = New-SDImage @call -EmbeddingPath $files
    $script:hash = (Get-SDEmbedding 'a1111-style' -Path $files -TextEncoderWidth 8).Hash

    function Test-SamePixels($Reference, $Difference) {
        [Linq.Enumerable]::SequenceEqual([byte[]] $Reference.Pixels, [byte[]] $Difference.Pixels)
    }
}

AfterAll {
    if ($null -ne $savedVariable) { $env:SD_EMBEDDINGS = $savedVariable }
}

Describe 'New-SDImage -EmbeddingPath' {
    It 'uses the embedding its negative prompt names, and records its name and hash' {
        $plain = New-SDImage @call
        Test-SamePixels $withEmbedding $plain | Should -BeFalse
        $withEmbedding.Record.Embeddings['a1111-style'] | Should -Be $hash
        $plain.Record.Embeddings | Should -BeNullOrEmpty
        $withEmbedding.Record.PromptSyntax | Should -Be 'Automatic1111'
    }

    It 'finds it through $env:SD_EMBEDDINGS too' {
        try {
            $env:SD_EMBEDDINGS = $files
            $viaVariable = New-SDImage @call
        }
        finally { Remove-Item env:SD_EMBEDDINGS -ErrorAction Ignore }
        Test-SamePixels $withEmbedding $viaVariable | Should -BeTrue
    }

    It 'writes TI hashes into the AUTOMATIC1111 parameters of the saved PNG' {
        $path = Join-Path $TestDrive 'ti.png'
        $withEmbedding | Save-SDImage -Path $path
        (Get-SDTestPngText $path)['parameters'] | Should -BeLike "*TI hashes: `"a1111-style: $hash`"*"
    }

    It 'replays with the same embedding, and names the embedding when no file provides it' {
        $replayed = $withEmbedding | New-SDImage -Model $model -EmbeddingPath $files
        Test-SamePixels $withEmbedding $replayed | Should -BeTrue
        $record = Get-SDCommandError { $withEmbedding | New-SDImage -Model $model }
        $record.FullyQualifiedErrorId | Should -Be 'EmbeddingNotFound,PSStableDiffusion.NewSDImageCommand'
        $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $record.TargetObject | Should -Be 'a1111-style'
        $record.Exception.Message | Should -BeLike "*a1111-style*$hash*"
    }

    It 'fails with <Id> (<Category>) for <Case>, naming the file, and writes no file' -ForEach @(
        @{ Case = 'a path that does not exist'; Id = 'EmbeddingPathNotFound'; Category = 'ObjectNotFound'; File = 'no-such-folder'; Negative = 'x' }
        @{ Case = 'an SD 1.x embedding (768 wide)'; Id = 'EmbeddingWidthMismatch'; Category = 'InvalidData'; File = 'sd15-style.safetensors'; Negative = 'sd15-style' }
        @{ Case = 'a .pt that calls a global'; Id = 'UnsafeCheckpoint'; Category = 'SecurityError'; File = 'calls-global.pt'; Negative = 'calls-global' }
        @{ Case = 'a truncated .pt'; Id = 'InvalidEmbedding'; Category = 'InvalidData'; File = 'truncated.pt'; Negative = 'truncated' }
    ) {
        $outFolder = Join-Path $TestDrive "out-$([guid]::NewGuid().ToString('N'))"
        $path = Join-Path $bad $File
        $record = Get-SDCommandError { New-SDImage 'x' -NegativePrompt $Negative -Model $model -Steps 1 -Seed 1 -EmbeddingPath $path | Save-SDImage "$outFolder/" }
        $record.FullyQualifiedErrorId | Should -Be "$Id,PSStableDiffusion.NewSDImageCommand"
        $record.CategoryInfo.Category | Should -Be $Category
        $record.Exception.Message | Should -BeLike "*$File*"
        $outFolder | Should -Not -Exist
    }
}

Describe 'New-SDImage replay and -PromptSyntax' {
    It 'replays an image made with -PromptSyntax None literally, unless -PromptSyntax is given' {
        $literal = New-SDImage 'a (red:1.3) fox' -PromptSyntax None -Model $model -Steps 1 -Seed 3
        $literal.Record.PromptSyntax | Should -Be 'None'
        $replayed = $literal | New-SDImage -Model $model
        Test-SamePixels $literal $replayed | Should -BeTrue
        $replayed.Record.PromptSyntax | Should -Be 'None'
        $weighted = $literal | New-SDImage -Model $model -PromptSyntax Automatic1111
        Test-SamePixels $literal $weighted | Should -BeFalse
    }

    It 'warns that -EmbeddingPath does nothing with -PromptSyntax None' {
        $null = New-SDImage 'x' -Model $model -Steps 1 -Seed 1 -PromptSyntax None -EmbeddingPath $files -WarningVariable warnings -WarningAction SilentlyContinue
        "$warnings" | Should -BeLike '*-EmbeddingPath has no effect with -PromptSyntax None*'
    }
}
