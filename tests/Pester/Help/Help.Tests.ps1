# For every exported command: help that was written, not generated from the syntax, with a synopsis, a
# description, examples with remarks, and exactly the cmdlet's parameters, each with its type and required flag.

BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $module = Import-SDModule
    $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters

    $script:commandCases = foreach ($command in Get-Command -Module $module.Name -CommandType Cmdlet, Function | Sort-Object Name) {
        $help = Get-Help $command.Name -Full -ErrorAction SilentlyContinue
        $helpParameterNames = @(if ($help.psobject.Properties['parameters'] -and $help.parameters -and $help.parameters.psobject.Properties['parameter']) {
            $help.parameters.parameter.name
        })
        $defaultSet = $command.DefaultParameterSet
        $parameters = foreach ($parameter in $command.Parameters.Values | Where-Object Name -NotIn $common | Sort-Object Name) {
            $sets = $parameter.ParameterSets
            $set = if ($defaultSet -and $sets.ContainsKey($defaultSet)) { $sets[$defaultSet] }
                   elseif ($sets.ContainsKey('__AllParameterSets')) { $sets['__AllParameterSets'] }
                   else { $sets.Values | Select-Object -First 1 }
            @{ Name = $parameter.Name; TypeName = $parameter.ParameterType.Name; Mandatory = $set.IsMandatory }
        }
        @{
            Name               = $command.Name
            Parameters         = @($parameters)
            ParameterNames     = @($command.Parameters.Keys)
            HelpParameterNames = $helpParameterNames
        }
    }
}

Describe 'Help' {
    It 'covers at least one exported command' {
        $commandCases.Count | Should -BeGreaterThan 0
    }
}

Describe 'Help for <Name>' -ForEach $commandCases {
    BeforeAll {
        $help = Get-Help $Name -Full
    }

    It 'is written, not generated from the syntax' {
        $help.Synopsis | Should -Not -BeLike '*`[`<CommonParameters`>`]*'
        $help.Synopsis.Trim() | Should -Not -Be $Name
    }

    It 'has a synopsis' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
    }

    It 'has a description' {
        ($help.Description.Text -join "`n").Trim() | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example, each with code and remarks' {
        $examples = @($help.Examples.Example)
        $examples.Count | Should -BeGreaterThan 0
        foreach ($example in $examples) {
            $example.Code | Should -Not -BeNullOrEmpty
            ($example.Remarks.Text -join '').Trim() | Should -Not -BeNullOrEmpty
        }
    }

    It 'documents parameter <_.Name> as <_.TypeName>, required: <_.Mandatory>' -ForEach $Parameters {
        $parameterHelp = @($help.parameters.parameter | Where-Object name -EQ $_.Name)
        $parameterHelp.Count | Should -Be 1 -Because "$($_.Name) must be documented once"
        ($parameterHelp[0].Description.Text -join '').Trim() | Should -Not -BeNullOrEmpty
        $parameterHelp[0].parameterValue.Trim() | Should -Be $_.TypeName
        $parameterHelp[0].required | Should -Be $_.Mandatory.ToString().ToLowerInvariant()
    }

    It 'documents no parameter the cmdlet lacks' {
        $HelpParameterNames | Where-Object { $_ -notin $ParameterNames } | Should -BeNullOrEmpty
    }
}
