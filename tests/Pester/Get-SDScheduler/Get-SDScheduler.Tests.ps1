# Get-SDScheduler: the list, lookups by alias and wildcard, UnknownScheduler, tab completion, the table view, and
# every listed scheduler running through New-SDImage on the tiny 768-v (v-prediction) model.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $script:all = @(Get-SDScheduler)
}

Describe 'Get-SDScheduler' {
    Context 'Listing' {
        It 'lists every scheduler class once, at least 13' {
            $all.Count | Should -BeGreaterOrEqual 13
            $all | ForEach-Object { $_ | Should -BeOfType 'PSStableDiffusion.Engine.Schedulers.SchedulerInfo' }
            @($all.ClassName | Sort-Object -Unique).Count | Should -Be $all.Count
            foreach ($name in 'DDIMScheduler', 'DDPMScheduler', 'PNDMScheduler', 'LMSDiscreteScheduler', 'EulerDiscreteScheduler',
                'EulerAncestralDiscreteScheduler', 'HeunDiscreteScheduler', 'KDPM2DiscreteScheduler', 'KDPM2AncestralDiscreteScheduler',
                'DPMSolverMultistepScheduler', 'DPMSolverSinglestepScheduler', 'DEISMultistepScheduler', 'UniPCMultistepScheduler') {
                $all.ClassName | Should -Contain $name
            }
        }

        It 'gives each its short name, a description, its order, UNet calls per step and diffusers defaults' {
            foreach ($scheduler in $all) {
                $scheduler.ShortName | Should -Be ($scheduler.ClassName -replace 'Scheduler$', '')
                $scheduler.Description | Should -Not -BeNullOrEmpty
                $scheduler.Order | Should -BeGreaterOrEqual 1
                $scheduler.ModelCallsPerStep | Should -BeIn 1, 2
                $scheduler.Defaults.Count | Should -BeGreaterThan 0
            }
            ($all | Where-Object ShortName -EQ 'HeunDiscrete').ModelCallsPerStep | Should -Be 2
            ($all | Where-Object ShortName -EQ 'EulerAncestralDiscrete').IsStochastic | Should -BeTrue
            ($all | Where-Object ShortName -EQ 'DDIM').IsStochastic | Should -BeFalse
        }
    }

    Context 'Lookup' {
        It 'finds DPMSolverMultistep by the alias ''DPM++ 2M Karras''' {
            $found = @(Get-SDScheduler 'DPM++ 2M Karras')
            $found.Count | Should -Be 1
            $found[0].ClassName | Should -Be 'DPMSolverMultistepScheduler'
            $found[0].Aliases | Should -Contain 'DPM++ 2M Karras'
        }

        It 'finds by class name and short name, case-insensitively, and from the pipeline' {
            @(Get-SDScheduler eulerdiscretescheduler).ClassName | Should -Be 'EulerDiscreteScheduler'
            @('UniPC', 'PLMS' | Get-SDScheduler).ClassName | Should -Be @('UniPCMultistepScheduler', 'PNDMScheduler')
        }

        It 'matches wildcards against class names, short names and aliases' {
            @(Get-SDScheduler 'Euler*').ClassName | Should -Be @('EulerAncestralDiscreteScheduler', 'EulerDiscreteScheduler')
            $karras = @(Get-SDScheduler '*Karras').ShortName
            $karras | Should -Contain 'DPMSolverMultistep'
            $karras | Should -Contain 'LMSDiscrete'
            $karras | Should -Not -Contain 'DDIM'
        }

        It 'writes nothing and no error for a pattern that matches nothing' {
            $errors = $null
            @(Get-SDScheduler 'NoSuch*' -ErrorVariable errors) | Should -BeNullOrEmpty
            @($errors) | Should -BeNullOrEmpty
        }

        It 'fails with UnknownScheduler (ObjectNotFound) for an unknown name, listing the valid names' {
            $record = Get-SDCommandError { Get-SDScheduler 'NoSuchScheduler' }
            $record | Should -Not -BeNullOrEmpty
            $record.FullyQualifiedErrorId | Should -BeLike 'UnknownScheduler,PSStableDiffusion.GetSDSchedulerCommand'
            $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $record.Exception.Message | Should -BeLike "*'NoSuchScheduler'*DPM++ 2M Karras*"
        }
    }

    Context 'Tab completion' {
        It 'completes -Name of Get-SDScheduler with quoted AUTOMATIC1111 names' {
            $completions = (TabExpansion2 -inputScript ($line = 'Get-SDScheduler DPM') -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Contain "'DPM++ 2M Karras'"
            $completions | Should -Contain 'DPMSolverMultistepScheduler'
        }

        It 'completes -Scheduler of Invoke-SDInpaint' {
            $completions = (TabExpansion2 -inputScript ($line = 'Invoke-SDInpaint -Scheduler Uni') -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Contain 'UniPC'
            $completions | Should -Contain 'UniPCMultistepScheduler'
        }
    }

    Context 'Formatting' {
        It 'is shown as a table of ShortName, Stochastic, Order, Calls/step and Aliases, without Type and Defaults' {
            $text = Get-SDScheduler | Format-Table | Out-String -Width 200
            $text | Should -Match 'ShortName\s+Stochastic\s+Order\s+Calls/step\s+Aliases'
            $text | Should -Match 'DPMSolverMultistep\s+False\s+1\s+1\s+DPM\+\+ 2M, DPM\+\+ 2M Karras'
            $text | Should -Match 'HeunDiscrete\s+False\s+2\s+2\s+Heun, Heun Karras'
            $text | Should -Not -Match 'Defaults|PSStableDiffusion\.Engine\.Schedulers\.'
        }

        It 'is shown as a list without Type and Defaults' {
            $text = Get-SDScheduler DDIM | Format-List | Out-String -Width 200
            $text | Should -Match 'ClassName\s+: DDIMScheduler'
            $text | Should -Match 'Description\s+: DDIM'
            $text | Should -Not -Match 'Defaults|Type\s+:'
        }
    }

    Context 'Every scheduler runs' {
        It 'runs each listed scheduler through New-SDImage on the 768-v model (2 steps, 64x64)' {
            $model = Get-SDGoldenModelPath -Case txt2img_v
            $failures = foreach ($scheduler in $all) {
                try {
                    $image = New-SDImage 'a lighthouse' -Model $model -Scheduler $scheduler.ShortName -Steps 2 -Width 64 -Height 64 -Seed 1 -ErrorAction Stop
                    if ($image.Width -ne 64 -or $image.Scheduler -ne $scheduler.ShortName) {
                        "$($scheduler.ShortName): got a $($image.Width)-wide image recorded as '$($image.Scheduler)'"
                    }
                    elseif ([Linq.Enumerable]::Count([Linq.Enumerable]::Distinct([byte[]] $image.Pixels)) -lt 2) {
                        "$($scheduler.ShortName): a flat image"
                    }
                }
                catch { "$($scheduler.ShortName): $($_.FullyQualifiedErrorId): $($_.Exception.Message)" }
            }
            $failures | Should -BeNullOrEmpty
        }
    }
}
