# The module as users install it: Publish-PSResource of the built module into a local folder repository, then, in a
# fresh pwsh whose home and PSModulePath are empty folders, Install-PSResource from that repository, Import-Module by
# name, Get-SDDevice and New-SDImage on the tiny model. The package carries this platform's libtorch natives.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:modulePath = Get-SDModulePath
    $script:model = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp

    $script:userHome = Join-Path $TestDrive 'home'
    $script:repository = Join-Path $TestDrive 'repository'
    $script:output = Join-Path $TestDrive 'result.json'
    New-Item -ItemType Directory -Path $userHome, $repository | Out-Null

    # Everything runs in a child with its own HOME: PSResourceGet keeps its repository list and CurrentUser modules
    # there, so the user's own configuration is never touched.
    $script:childScript = Join-Path $TestDrive 'install.ps1'
    Set-Content -LiteralPath $childScript -Value @'
param($ModulePath, $Repository, $Model, $Output)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$result = [ordered]@{}
Register-PSResourceRepository -Name SDLocalTest -Uri $Repository -Trusted
$clock = [Diagnostics.Stopwatch]::StartNew()
Publish-PSResource -Path $ModulePath -Repository SDLocalTest
$result.PublishSeconds = $clock.Elapsed.TotalSeconds
$result.Packages = @(Get-ChildItem -LiteralPath $Repository -Filter *.nupkg | ForEach-Object { @{ Name = $_.Name; Length = $_.Length } })
$result.Found = @(Find-PSResource -Name PSStableDiffusion -Repository SDLocalTest | ForEach-Object { "$($_.Name) $($_.Version)" })
$clock.Restart()
Install-PSResource -Name PSStableDiffusion -Repository SDLocalTest -Scope CurrentUser -TrustRepository
$result.InstallSeconds = $clock.Elapsed.TotalSeconds
$result.Available = @(Get-Module -ListAvailable PSStableDiffusion | ForEach-Object ModuleBase)
$module = Import-Module PSStableDiffusion -PassThru
$result.ImportedFrom = $module.ModuleBase
$result.Manifest = Test-ModuleManifest (Join-Path $module.ModuleBase 'PSStableDiffusion.psd1') | Select-Object Name, Version
$result.Cpu = (Get-SDDevice -Type cpu).Device
$image = New-SDImage -Model $Model -Prompt 'a lighthouse' -Width 64 -Height 64 -Steps 2 -Seed 5
$result.Image = "$($image.Width)x$($image.Height) seed $($image.Seed)"
# A captioned contact sheet: SkiaSharp's natives and the bundled font come from the package too.
$sheet = $image | New-SDImageGrid -Label Seed
$ink = 0
for ($i = 64 * 64 * 3; $i -lt $sheet.Pixels.Length; $i += 3) { if ($sheet.Pixels[$i] -lt 128) { $ink++ } }
$result.Sheet = @{ Width = $sheet.Width; Height = $sheet.Height; CaptionInk = $ink; Caption = $sheet.Record.ContactSheet.Members[0].Caption }
$result.UserModules = (Join-Path $HOME '.local/share/powershell/Modules')
$result | ConvertTo-Json -Depth 4 | Set-Content -LiteralPath $Output
'@

    $executable = [Environment]::ProcessPath
    $arguments = @()
    if ([IO.Path]::GetFileNameWithoutExtension($executable) -eq 'dotnet') { $arguments += Join-Path $PSHOME 'pwsh.dll' }
    $arguments += '-NoProfile', '-NonInteractive', '-File', $childScript, $modulePath, $repository, $model, $output
    $saved = @{}
    $environment = @{
        HOME = $userHome; XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; XDG_CACHE_HOME = $null
        # Only the user's (empty) module folder and PowerShell's own: nothing else can supply PSStableDiffusion.
        PSModulePath = Join-Path $userHome '.local/share/powershell/Modules'
        LOCALAPPDATA = Join-Path $userHome 'AppData/Local'; USERPROFILE = $userHome
    }
    foreach ($name in $environment.Keys) {
        $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, $environment[$name])
    }
    # NuGet, inside PSResourceGet, may write a NuGet/NuGet.Config next to the working folder: keep it in TestDrive.
    Push-Location -LiteralPath $TestDrive
    try {
        $script:log = & $executable @arguments 2>&1 | Out-String
        $script:exitCode = $LASTEXITCODE
    }
    finally {
        Pop-Location
        foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) }
    }
    $script:result = if (Test-Path -LiteralPath $output) { Get-Content -Raw -LiteralPath $output | ConvertFrom-Json }
}

Describe 'Installing the module with PSResourceGet' {
    It 'publishes, installs, imports and generates in a clean pwsh' {
        $exitCode | Should -Be 0 -Because $log
        $result | Should -Not -BeNullOrEmpty -Because $log
    }

    It 'publishes one .nupkg of the manifest''s version' {
        $version = (Import-PowerShellDataFile (Join-Path $modulePath 'PSStableDiffusion.psd1')).ModuleVersion
        @($result.Packages.Name) | Should -Be @("PSStableDiffusion.$version.nupkg")
        @($result.Found) | Should -Be @("PSStableDiffusion $version")
    }

    It 'installs into the user''s module folder, and imports from there by name' {
        $expected = Join-Path $result.UserModules 'PSStableDiffusion'
        @($result.Available).Count | Should -Be 1
        $result.Available[0] | Should -BeLike "$expected*"
        $result.ImportedFrom | Should -Be $result.Available[0]
        $result.Manifest.Name | Should -Be 'PSStableDiffusion'
    }

    It 'loads libtorch from the installed package and generates' {
        $result.Cpu | Should -Be 'cpu'
        $result.Image | Should -Be '64x64 seed 5'
    }

    It 'draws a contact sheet''s caption with the font the package carries' {
        $result.Sheet.Width | Should -Be 64
        $result.Sheet.Height | Should -BeGreaterThan 64
        $result.Sheet.Caption | Should -Be 'Seed: 5'
        $result.Sheet.CaptionInk | Should -BeGreaterThan 10 -Because 'the caption strip under the image has text'
    }
}
