# New-SDImage stopped just after it took the cached model gives the model back (issue 12, part 7: the soak hung with
# four calls waiting on a model that a stopped call still held). A stopped pipeline makes WriteVerbose throw; the
# call logs right after the engine cache hands it the model, and that throw used to lose the lease.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    # A copy of its own: on a regression the held model shuts out this folder only, not the other tests' golden one.
    $script:model = Copy-SDGoldenModel -Case txt2img_eps_dpmpp -Destination (Join-Path $TestDrive 'model')

    # The next call runs in a runspace of its own and gets 60 s: shut out of the model, it is stopped (which cancels its
    # wait) and the test fails instead of hanging the suite.
    function Invoke-NextCall {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$($module.ModuleBase)'; New-SDImage 'the next call' -Model '$model' -Steps 1 -Seed 2 -Precision Float32")
            $async = $ps.BeginInvoke()
            if (-not $async.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds(60))) {
                $ps.Stop()
                return 'shut out of the model for 60 s'
            }
            $image = @($ps.EndInvoke($async))
            if ($ps.HadErrors) { return "failed: $($ps.Streams.Error[0])" }
            "$($image.Count) image(s)"
        }
        finally {
            $ps.Dispose()
        }
    }
}

AfterAll {
    Clear-SDEngine -Model $model
}

Describe 'New-SDImage stopped right after it took the model' {
    # Select-Object -First stops the pipeline upstream from inside the write of the verbose line it was waiting for,
    # at the very point where Ctrl+C's stop makes WriteVerbose throw.
    It 'gives the model back when stopped at "<Line>"' -ForEach @(
        @{ Line = 'Using the cached *'; Cached = $true }
        @{ Line = 'Weights: *'; Cached = $false }          # just loaded, its weights hashed
        @{ Line = 'Loaded * model (*'; Cached = $false }
    ) {
        if ($Cached) { New-SDImage 'load it' -Model $model -Steps 1 -Seed 1 -Precision Float32 | Out-Null }
        else { Clear-SDEngine -Model $model }

        $stoppedAt = New-SDImage 'a stopped call' -Model $model -Steps 1 -Seed 1 -Precision Float32 -Verbose 4>&1 |
            Where-Object { "$_" -like $Line } | Select-Object -First 1
        "$stoppedAt" | Should -BeLike $Line

        (Get-SDEngine -Model $model).Busy | Should -BeFalse -Because 'no call runs on the model now'
        Invoke-NextCall | Should -Be '1 image(s)'
    }
}
