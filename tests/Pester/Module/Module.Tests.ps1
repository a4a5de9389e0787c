BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:manifest = Get-SDSourceManifest
    $script:listed = @($manifest.CmdletsToExport | Sort-Object)
    $script:implemented = @(Get-SDImplementedCmdlet -Module $module)
    $script:exported = @($module.ExportedCmdlets.Keys | Sort-Object)
    $script:pending = @(Get-SDPendingCmdlet | Sort-Object)
    $script:files = @(Get-ChildItem -LiteralPath $module.ModuleBase -File -Recurse)
}

Describe 'PSStableDiffusion module' {
    Context 'Manifest' {
        It 'is imported from the built folder' {
            $module.ModuleBase | Should -Be (Get-SDModulePath)
            $module.ModuleType | Should -Be 'Binary'
            $module.ImplementingAssembly.Location | Should -Be (Join-Path $module.ModuleBase 'PSStableDiffusion.dll')
        }

        It 'ships the source manifest unchanged' {
            $built = Get-Content -Raw -LiteralPath (Join-Path $module.ModuleBase 'PSStableDiffusion.psd1')
            $source = Get-Content -Raw -LiteralPath (Join-Path (Get-SDRepoRoot) 'PSStableDiffusion.psd1')
            $built | Should -BeExactly $source
        }

        It 'targets PowerShell 7.4 or later, Core edition' {
            $manifest.PowerShellVersion | Should -Be '7.4'
            $manifest.CompatiblePSEditions | Should -Be @('Core')
            $manifest.RootModule | Should -Be 'PSStableDiffusion.dll'
        }

        It 'has the version of its assembly' {
            $assemblyVersion = $module.ImplementingAssembly.GetName().Version
            $module.Version | Should -Be ([version]::new($assemblyVersion.Major, $assemblyVersion.Minor, $assemblyVersion.Build))
        }

        It 'exports no functions, aliases or variables' {
            $module.ExportedFunctions.Count | Should -Be 0
            $module.ExportedAliases.Count | Should -Be 0
            $module.ExportedVariables.Count | Should -Be 0
        }

        It 'loads its formats file' {
            $manifest.FormatsToProcess | Should -Be @('PSStableDiffusion.Format.ps1xml')
            Join-Path $module.ModuleBase 'PSStableDiffusion.Format.ps1xml' | Should -Exist
            Get-FormatData -TypeName 'PSStableDiffusion.SDDeviceInfo' | Should -Not -BeNullOrEmpty
        }

        It 'loads its types file (SDImage serialization)' {
            $manifest.TypesToProcess | Should -Be @('PSStableDiffusion.Types.ps1xml')
            Join-Path $module.ModuleBase 'PSStableDiffusion.Types.ps1xml' | Should -Exist
            (Get-TypeData -TypeName 'Deserialized.PSStableDiffusion.Engine.SDImage').TargetTypeForDeserialization |
                Should -Be ([PSStableDiffusion.Engine.SDImage])
        }

        It 'passes Test-ModuleManifest as shipped (the built folder)' {
            $tested = Test-ModuleManifest -Path (Join-Path $module.ModuleBase 'PSStableDiffusion.psd1') -ErrorAction Stop
            $tested.Name | Should -Be 'PSStableDiffusion'
            $tested.Version | Should -Be ([version] $manifest.ModuleVersion)
        }

        It 'passes Test-ModuleManifest at the repository root but for the two assemblies that only the build writes' {
            # The root manifest is the one shipped (compared byte for byte above); Test-ModuleManifest wants RootModule
            # and RequiredAssemblies to exist next to it, and only the build puts them there.
            $problems = @()
            $null = Test-ModuleManifest -Path (Join-Path (Get-SDRepoRoot) 'PSStableDiffusion.psd1') -ErrorVariable problems -ErrorAction SilentlyContinue
            $unexpected = @($problems | Where-Object { "$_" -notmatch "'PSStableDiffusion(\.Engine)?\.dll'" } | ForEach-Object { "$_" })
            $unexpected | Should -BeNullOrEmpty
            @($problems).Count | Should -BeLessOrEqual 3 -Because 'two RequiredAssemblies entries and the RootModule at most'
        }

        It 'carries the gallery metadata PSResourceGet publishes: a release version, licence, tags, release notes' {
            $props = [xml](Get-Content -Raw -LiteralPath (Join-Path (Get-SDRepoRoot) 'Directory.Build.props'))
            $manifest.ModuleVersion | Should -Match '^\d+\.\d+\.\d+$'
            $manifest.ModuleVersion | Should -Be (@($props.Project.PropertyGroup.Version) | Where-Object { $_ } | Select-Object -First 1)
            $data = $manifest.PrivateData.PSData
            [uri]::IsWellFormedUriString($data.LicenseUri, 'Absolute') | Should -BeTrue
            @($data.Tags).Count | Should -BeGreaterThan 3
            @($data.Tags | Where-Object { $_ -match '\s' }) | Should -BeNullOrEmpty -Because 'gallery tags have no spaces'
            $data.Tags | Should -Contain 'PSEdition_Core'
            $data.ReleaseNotes | Should -Match ([regex]::Escape($manifest.ModuleVersion))
            $data.ReleaseNotes | Should -Match 'New-SDImageGrid'
            if ($data.ContainsKey('ProjectUri')) { [uri]::IsWellFormedUriString($data.ProjectUri, 'Absolute') | Should -BeTrue }
        }

        It 'names, at the repository root, every file it loads besides its assemblies' {
            $root = Get-SDRepoRoot
            foreach ($file in @($manifest.FormatsToProcess) + @($manifest.TypesToProcess)) {
                Join-Path $root $file | Should -Exist
            }
        }
    }

    Context 'Exported cmdlets' {
        It 'implements at least one cmdlet' {
            $implemented.Count | Should -BeGreaterThan 0
        }

        It 'lists every implemented cmdlet in CmdletsToExport' {
            $implemented | Where-Object { $_ -notin $listed } | Should -BeNullOrEmpty -Because 'an unlisted cmdlet is not exported'
        }

        It 'exports exactly the implemented cmdlets' {
            $exported | Should -Be $implemented
        }

        It 'lists only implemented cmdlets and the pending ones (tests/Pester/TestUtilities.psm1)' {
            $listed | Where-Object { $_ -notin $implemented -and $_ -notin $pending } |
                Should -BeNullOrEmpty -Because 'the manifest must not promise a cmdlet nobody is writing'
        }

        It 'keeps no implemented cmdlet on the pending list' {
            $pending | Where-Object { $_ -in $implemented } |
                Should -BeNullOrEmpty -Because 'an implemented cmdlet must leave the pending list in TestUtilities.psm1'
        }

        It 'keeps every pending cmdlet in CmdletsToExport' {
            $pending | Where-Object { $_ -notin $listed } | Should -BeNullOrEmpty
        }
    }

    Context 'Layout' {
        It 'has the TorchSharp natives flat next to TorchSharp.dll' {
            Join-Path $module.ModuleBase 'TorchSharp.dll' | Should -Exist
            $files.Name | Where-Object { $_ -match '^(lib)?LibTorchSharp\.(so|dll|dylib)$' } | Should -HaveCount 1
            $files.Name | Where-Object { $_ -match '^(lib)?torch_cpu\.(so|dll|dylib)$' } | Should -HaveCount 1
            Join-Path $module.ModuleBase 'runtimes' | Should -Not -Exist
        }

        It 'leaves out the libtorch natives nothing loads' {
            $unneeded = '(torch_python|_test|nnapi|aoti|global_deps|backend_with_compiler|^(lib)?shm)\.(so|dll|dylib)'
            $files.Name | Where-Object { $_ -match $unneeded } | Should -BeNullOrEmpty
        }

        It 'does not ship PowerShell''s own assembly' {
            $files.Name | Should -Not -Contain 'System.Management.Automation.dll'
        }

        It 'ships the help file' {
            Join-Path $module.ModuleBase 'en-US/PSStableDiffusion.dll-Help.xml' | Should -Exist
        }

        It 'runs with an empty NuGet packages folder, so natives can only come from the module' {
            $env:NUGET_PACKAGES | Should -Not -BeNullOrEmpty
            Get-ChildItem -Force -LiteralPath $env:NUGET_PACKAGES | Should -BeNullOrEmpty
        }
    }
}
