# PowerShell remoting over SSH, for real: the test starts its own sshd on 127.0.0.1 (a throw-away host key and user
# key, the PowerShell subsystem pointing at the pwsh running these tests), generates on the "remote" hosts with
# Invoke-Command -HostName a,b and with persistent PSSessions (Invoke-Command -Session ... -ThrottleLimit; PowerShell
# 7.6 has no -ThrottleLimit with -HostName), and uses the results here with
# Save-SDImage and Invoke-SDInpaint. sshd must be installed (Debian: openssh-server; .ci/run installs it): without
# it the tests fail, they are never skipped.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:modulePath = Get-SDModulePath
    $script:model = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:inpaintModel = Get-SDGoldenModelPath -Case inpaint
    # Float32 spelled out: the remote sessions do not see the suite's pinned -Precision, and Auto may pick bfloat16.
    $script:call = @{ Prompt = 'a lighthouse at dawn'; Width = 64; Height = 64; Steps = 2; Precision = 'Float32' }
    $script:sshd = Start-SDTestSshServer -Folder (Join-Path $TestDrive 'sshd')
    $script:connection = $sshd.Connection
}

AfterAll {
    if ($script:sshd) { Stop-SDTestSshServer $sshd }
}

Describe 'Remoting over SSH' {
    Context 'Invoke-Command -HostName a,b' {
        BeforeAll {
            # Two host names for the same sshd: two connections, run side by side.
            $script:remote = @(Invoke-Command -HostName 'localhost', '127.0.0.1' @connection -ErrorAction Stop -ScriptBlock {
                    Import-Module $using:modulePath
                    New-SDImage @using:call -Model $using:model -Seed 11
                })
            $script:local = New-SDImage @call -Model $model -Seed 11
        }

        It 'brings back one image per host: an SDImage bag that casts to SDImage here' {
            # Invoke-Command deserializes on its receiving thread, where PowerShell does not rehydrate (Start-Job's
            # Receive-Job does): the bag arrives, and every image parameter and a cast restore it.
            $remote.Count | Should -Be 2
            foreach ($image in $remote) {
                ($image -is [PSStableDiffusion.Engine.SDImage]) -or ($image.pstypenames[0] -eq 'Deserialized.PSStableDiffusion.Engine.SDImage') |
                    Should -BeTrue
                ([PSStableDiffusion.Engine.SDImage] $image).Seed | Should -Be 11
            }
            @($remote.PSComputerName | Sort-Object) | Should -Be @('127.0.0.1', 'localhost')
        }

        It 'draws on each host the pixels that this process draws for the same call' {
            foreach ($image in [PSStableDiffusion.Engine.SDImage[]] $remote) {
                [Linq.Enumerable]::SequenceEqual([byte[]] $image.Pixels, [byte[]] $local.Pixels) | Should -BeTrue
                $image.Record.Seed | Should -Be 11
            }
        }

        It 'saves the remote images here with Save-SDImage' {
            $files = @($remote | Save-SDImage (Join-Path $TestDrive 'remote/{Seed}-{Index}-{Date}.png') -Force)
            $files.Count | Should -Be 2
            Get-SDPixelDifference $local.Pixels (Read-SDTestPng $files[0].FullName).Pixels | Should -Be 0
        }

        It 'feeds a remote image to Invoke-SDInpaint here' {
            $white = [byte[]]::new(64 * 64 * 3)
            [Array]::Fill($white, [byte] 255)
            $mask = [PSStableDiffusion.Engine.SDImage]::new(64, 64, $white)
            $painted = $remote[0] | Invoke-SDInpaint -Mask $mask -Prompt 'a red lighthouse' -Model $inpaintModel -Steps 2 -Seed 3
            $painted.PipelineKind | Should -Be 'Inpaint'
            $painted.Record.SourceImageHash | Should -Be $local.ComputeContentHash()
        }
    }

    Context 'Persistent sessions: a seed range split over hosts, merged in order' {
        BeforeAll {
            $script:sessions = @(New-PSSession -HostName 'localhost', '127.0.0.1' @connection -ErrorAction Stop)
            # Load the module and the model once per host, at most -ThrottleLimit hosts at a time; later calls reuse them.
            $script:warm = @(Invoke-Command -Session $sessions -ThrottleLimit 1 -ErrorAction Stop -ScriptBlock {
                    Import-Module $using:modulePath
                    New-SDImage -Prompt 'warm-up' -Model $using:model -Width 64 -Height 64 -Seed 1 -Steps 1 -Precision Float32
                })
            $seeds = 21..24
            $jobs = for ($i = 0; $i -lt $sessions.Count; $i++) {
                $mine = @($seeds | Where-Object { ($_ - $seeds[0]) % $sessions.Count -eq $i })
                Invoke-Command -Session $sessions[$i] -AsJob -ArgumentList (, $mine) -ScriptBlock {
                    param([long[]] $Seeds)
                    foreach ($seed in $Seeds) { New-SDImage @using:call -Model $using:model -Seed $seed }
                }
            }
            $script:merged = @($jobs | Receive-Job -Wait -AutoRemoveJob -ErrorAction Stop | Sort-Object Seed)
            $script:engines = @(Invoke-Command -Session $sessions -ScriptBlock { @(Get-SDEngine).Count })
        }

        AfterAll {
            if ($script:sessions) { $sessions | Remove-PSSession }
        }

        It 'returns every seed once, in order, half from each host' {
            @($merged.Seed) | Should -Be @(21, 22, 23, 24)
            @($merged | Group-Object PSComputerName | ForEach-Object Count) | Should -Be @(2, 2)
        }

        It 'warmed each host once, one after the other (-ThrottleLimit 1)' {
            $warm.Count | Should -Be 2
            @($warm.PSComputerName | Sort-Object) | Should -Be @('127.0.0.1', 'localhost')
        }

        It 'keeps the model loaded in each session' {
            $engines | Should -Be @(1, 1)
        }

        It 'saves the merged images here, one file per seed' {
            $files = @($merged | Save-SDImage (Join-Path $TestDrive 'merged/{Seed}.png'))
            @($files.Name) | Should -Be @('21.png', '22.png', '23.png', '24.png')
            (Import-SDImage $files[2].FullName).Seed | Should -Be 23
        }
    }
}
