# -Precision Auto (the default): what it chose and why, in -Verbose and the record; a replay keeps the recorded
# precision; an explicit precision is kept. The suite pins -Precision Float32 for the golden comparisons
# (Invoke-PesterSuite.ps1); these tests lift that default for New-SDImage.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:smallModel = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:pinned = $global:PSDefaultParameterValues['New-SDImage:Precision']
    $global:PSDefaultParameterValues.Remove('New-SDImage:Precision')
    $script:quick = @{ Model = $smallModel; Prompt = 'a lighthouse'; Seed = 7; Steps = 1 }
}

AfterAll {
    if ($null -ne $script:pinned) { $global:PSDefaultParameterValues['New-SDImage:Precision'] = $script:pinned }
    # The engine cache is the process's: leave no bfloat16 engine behind for the tests that count engines (this
    # frees the model's float32 engine too; the next test that needs it loads it again).
    Clear-SDEngine -Model $smallModel
}

Describe 'New-SDImage -Precision' {
    It 'Auto says in -Verbose and in the record what it chose and why' {
        $output = @(New-SDImage @quick -Verbose 4>&1)
        $image = @($output | Where-Object { $_ -is [PSStableDiffusion.Engine.SDImage] })[0]
        $verbose = @($output | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
        $reason = $image.Record.PrecisionReason
        $image.Record.DType | Should -BeIn 'float32', 'bfloat16'
        $reason | Should -Match "^$($image.Record.DType): "
        $reason | Should -Match 'float32 \d+ ms, bfloat16 \d+ ms'
        $verbose | Should -Contain "Precision $reason"
    }

    It 'a replay uses the precision recorded in the image, not Auto' {
        $original = New-SDImage @quick -Precision BFloat16 -WarningAction SilentlyContinue
        $file = $original | Save-SDImage -Path (Join-Path $TestDrive 'bf16.png')
        $replayed = Import-SDImage $file.FullName | New-SDImage -Model $smallModel
        $replayed.Record.DType | Should -Be 'bfloat16'
        $replayed.Record.PrecisionReason | Should -Match 'record'
        [Linq.Enumerable]::SequenceEqual([byte[]] $original.Pixels, [byte[]] $replayed.Pixels) | Should -BeTrue
    }

    It 'an explicit -Precision Float32 is kept and recorded as asked' {
        $image = New-SDImage @quick -Precision Float32
        $image.Record.DType | Should -Be 'float32'
        $image.Record.PrecisionReason | Should -Be 'float32: as -Precision asked.'
    }
}
