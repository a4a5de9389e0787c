# Clear-SDEngine: freeing all engines or some, -WhatIf, -PassThru and pipeline input from Get-SDEngine.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:model = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp

    function Use-Model {
        New-SDImage 'a test' -Model $model -Steps 1 -Seed 1 | Out-Null
        @(Get-SDEngine -Model $model).Count | Should -Be 1 -Because 'the generation loads the model'
    }
}

Describe 'Clear-SDEngine' {
    It 'empties the cache' {
        Use-Model
        Clear-SDEngine | Should -BeNullOrEmpty
        Get-SDEngine | Should -BeNullOrEmpty
    }

    It 'frees nothing with -WhatIf' {
        Use-Model
        Clear-SDEngine -WhatIf
        @(Get-SDEngine -Model $model).Count | Should -Be 1
    }

    It 'frees only the engines matching -Model, and -PassThru writes them' {
        Use-Model
        Clear-SDEngine -Model '*no-such-model*' -PassThru | Should -BeNullOrEmpty
        @(Get-SDEngine -Model $model).Count | Should -Be 1
        $freed = @(Clear-SDEngine -Model '*txt2img_eps_dpmpp*' -PassThru)
        $freed.Count | Should -Be 1
        $freed[0] | Should -BeOfType 'PSStableDiffusion.Engine.EngineInfo'
        $freed[0].Model | Should -Be $model
        $freed[0].MemoryBytes | Should -BeGreaterThan 0
        Get-SDEngine -Model $model | Should -BeNullOrEmpty
    }

    It 'frees the engines piped from Get-SDEngine' {
        Use-Model
        Get-SDEngine -Model $model | Clear-SDEngine
        Get-SDEngine -Model $model | Should -BeNullOrEmpty
    }

    It 'lets the next call load the model again' {
        Use-Model
        Clear-SDEngine -Model $model
        Use-Model
        (Get-SDEngine -Model $model).Uses | Should -Be 1
    }
}

Describe 'Clear-SDEngine when an engine fails to free' {
    BeforeAll {
        # An engine whose Dispose throws, put in the shared cache as a model would be: the only way to make a real
        # engine's Dispose fail on demand.
        $engineAssembly = [PSStableDiffusion.Engine.EngineCache].Assembly
        $torchSharp = [TorchSharp.torch].Assembly
        # -IgnoreWarnings: CS1701, the module targets net8.0 and pwsh runs on a later runtime.
        Add-Type -IgnoreWarnings -WarningAction SilentlyContinue -ReferencedAssemblies $engineAssembly.Location, $torchSharp.Location -TypeDefinition @'
public sealed class SDTestFailingEngine : PSStableDiffusion.Engine.ICachedEngine
{
    public long MemoryBytes => 1024;
    public string KindName => "test";
    public void Dispose() => throw new System.InvalidOperationException("the test engine cannot be freed");
}
'@
        $script:failingModel = Join-Path $TestDrive 'failing-model'
        $key = [PSStableDiffusion.Engine.EngineKey]::new($failingModel, [PSStableDiffusion.Engine.ComputeTarget]::Cpu32, '')
        $loader = [Func[SDTestFailingEngine]] { [SDTestFailingEngine]::new() }
        $lease = [PSStableDiffusion.Engine.EngineCache]::Shared.Acquire[SDTestFailingEngine]($key, $loader, [Threading.CancellationToken]::None, $null)
        $lease.Dispose()
        Use-Model
    }

    It 'reports EngineFreeFailed (CloseError) naming the model, and still frees the others' {
        $freed = @(Clear-SDEngine -PassThru -ErrorVariable failures -ErrorAction SilentlyContinue)
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -Be 'EngineFreeFailed,PSStableDiffusion.ClearSDEngineCommand'
        $failures[0].CategoryInfo.Category | Should -Be 'CloseError'
        $failures[0].TargetObject | Should -Be $failingModel
        $failures[0].Exception.Message | Should -BeLike "*'$failingModel'*the test engine cannot be freed*"
        @($freed.Model | Sort-Object) | Should -Be @($failingModel, $model | Sort-Object)
        Get-SDEngine | Should -BeNullOrEmpty
    }
}
