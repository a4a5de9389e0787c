#Requires -Version 7.4
<#
.SYNOPSIS
Generates the module's MAML help (PSStableDiffusion.dll-Help.xml) from help/<Cmdlet>.psd1 and the cmdlets' metadata.

.DESCRIPTION
Each cmdlet has one help source, help/<Verb-Noun>.psd1, holding only what a person has to write: synopsis,
description, one description per parameter, inputs, outputs, notes, examples and related links (see
help/README.md for the keys). Everything that the code already says (parameter types, mandatory, position,
pipeline input, aliases, wildcards, valid values, parameter sets and syntax) is read from Get-Command on the built
module, so the help cannot drift from the cmdlets.

build.ps1 runs this in a fresh pwsh after laying out the module (a binary module cannot be unloaded). The output
is deterministic: the same sources and module give the same bytes, and a file whose content did not change is not
rewritten. The script fails (exit code 1, one line per problem) when a cmdlet has no help source, a parameter has
no description, a source describes a parameter the cmdlet lacks, a source has an unknown key, or an output type
the cmdlet declares with [OutputType] is not documented.
#>
param(
    # The built module folder (out/PSStableDiffusion).
    [Parameter(Mandatory)] [string] $ModulePath,
    # The folder of help sources (help/).
    [Parameter(Mandatory)] [string] $SourcePath,
    # Where to write the MAML file; every path gets the same bytes.
    [Parameter(Mandatory)] [string[]] $OutputPath
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$MamlNamespace = 'http://schemas.microsoft.com/maml/2004/10'
$CommandNamespace = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$DevNamespace = 'http://schemas.microsoft.com/maml/dev/2004/10'
$MSHelpNamespace = 'http://msdn.microsoft.com/mshelp'

$SourceKeys = 'Synopsis', 'Description', 'Parameters', 'Inputs', 'Outputs', 'Notes', 'Examples', 'Links'
$RequiredKeys = 'Synopsis', 'Description', 'Parameters', 'Inputs', 'Outputs', 'Examples'
$ParameterKeys = 'Description', 'DefaultValue'
$ExampleKeys = 'Title', 'Code', 'Remarks'
$TypeKeys = 'Type', 'Description'
$LinkKeys = 'Text', 'Uri'

# Descriptions the generator supplies, so no source has to repeat them.
$StandardParameters = [ordered]@{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

$Problems = [Collections.Generic.List[string]]::new()

#region Source reading

# Splits help text into paragraphs: a string or an array of strings; within a string, a blank line starts a new
# paragraph, a line starting with "- " starts a new one (a list item), and other line breaks are spaces. So sources
# can wrap long text freely.
function ConvertTo-Paragraph([object] $Text) {
    foreach ($item in @($Text)) {
        if ($null -eq $item) { continue }
        $current = [Collections.Generic.List[string]]::new()
        foreach ($line in ([string] $item -replace "`r`n?", "`n").Split("`n")) {
            $trimmed = $line.Trim()
            if ($trimmed -eq '' -or $trimmed.StartsWith('- ')) {
                if ($current.Count) { $current -join ' '; $current.Clear() }
                if ($trimmed -eq '') { continue }
            }
            $current.Add($trimmed)
        }
        if ($current.Count) { $current -join ' ' }
    }
}

function Test-Key([hashtable] $Table, [string[]] $Allowed, [string] $Where) {
    foreach ($key in $Table.Keys) {
        if ($key -notin $Allowed) { $Problems.Add("${Where}: unknown key '$key' (allowed: $($Allowed -join ', ')).") }
    }
}

function Read-HelpSource([string] $Path, [string] $Name) {
    $tokens = $errors = $null
    [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref] $tokens, [ref] $errors) | Out-Null
    if ($errors) {
        foreach ($parseError in $errors) { $Problems.Add("${Path}:$($parseError.Extent.StartLineNumber): $($parseError.Message)") }
        return $null
    }
    try { $source = Import-PowerShellDataFile -LiteralPath $Path }
    catch { $Problems.Add("${Path}: not a valid PowerShell data file (only literals, arrays and hashtables are allowed): $($_.Exception.Message)"); return $null }
    Test-Key $source $SourceKeys $Path
    foreach ($key in $RequiredKeys) {
        if (-not $source.ContainsKey($key) -or $null -eq $source[$key]) { $Problems.Add("${Path}: '$key' is missing.") }
    }
    if ($source.ContainsKey('Parameters') -and $source.Parameters -isnot [hashtable]) {
        $Problems.Add("${Path}: 'Parameters' must be a hashtable of parameter name = description.")
        $source.Parameters = @{}
    }
    foreach ($example in @(if ($source.ContainsKey('Examples')) { $source.Examples })) {
        if ($example -isnot [hashtable]) { $Problems.Add("${Path}: each example must be a hashtable with Title, Code and Remarks."); continue }
        Test-Key $example $ExampleKeys "$Path (example '$($example['Title'])')"
        foreach ($key in $ExampleKeys) {
            if (-not $example[$key]) { $Problems.Add("${Path}: an example has no $key.") }
        }
    }
    foreach ($section in 'Inputs', 'Outputs') {
        foreach ($entry in @(if ($source.ContainsKey($section)) { $source[$section] })) {
            if ($entry -isnot [hashtable] -or -not $entry['Type'] -or -not $entry['Description']) {
                $Problems.Add("${Path}: each entry of $section must be a hashtable with Type and Description.")
                continue
            }
            Test-Key $entry $TypeKeys "$Path ($section)"
        }
    }
    foreach ($link in @(if ($source.ContainsKey('Links')) { $source.Links })) {
        if ($link -is [hashtable]) { Test-Key $link $LinkKeys "$Path (Links)" }
        elseif ($link -isnot [string]) { $Problems.Add("${Path}: each link must be a command or topic name, or @{ Text = ...; Uri = ... }.") }
    }
    $source
}

#endregion

#region Metadata

function Get-TypeDisplayName([type] $Type) {
    $underlying = [Nullable]::GetUnderlyingType($Type)
    if ($underlying) { $Type = $underlying }
    $Type.Name
}

function Get-TypeFullName([type] $Type) {
    $underlying = [Nullable]::GetUnderlyingType($Type)
    if ($underlying) { $Type = $underlying }
    $Type.FullName
}

function Get-ValidValue([System.Management.Automation.ParameterMetadata] $Parameter) {
    $set = $Parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
    if ($set) { return @($set.ValidValues) }
    $type = $Parameter.ParameterType
    if ($type.IsArray) { $type = $type.GetElementType() }
    $underlying = [Nullable]::GetUnderlyingType($type)
    if ($underlying) { $type = $underlying }
    if ($type.IsEnum) { return @([Enum]::GetNames($type)) }
    @()
}

# The set whose flags describe the parameter in the PARAMETERS section: the default set when the parameter is in it,
# else the one shared by all sets, else its first set (the same rule as tests/Pester/Help).
function Get-MainSetMetadata([System.Management.Automation.CommandInfo] $Command, [System.Management.Automation.ParameterMetadata] $Parameter) {
    $sets = $Parameter.ParameterSets
    if ($Command.DefaultParameterSet -and $sets.ContainsKey($Command.DefaultParameterSet)) { return $sets[$Command.DefaultParameterSet] }
    if ($sets.ContainsKey('__AllParameterSets')) { return $sets['__AllParameterSets'] }
    $sets[@($sets.Keys | Sort-Object)[0]]
}

function Get-PipelineInputText([object[]] $SetMetadata) {
    $byValue = @($SetMetadata | Where-Object ValueFromPipeline).Count -gt 0
    $byName = @($SetMetadata | Where-Object ValueFromPipelineByPropertyName).Count -gt 0
    if ($byValue -and $byName) { 'True (ByValue, ByPropertyName)' }
    elseif ($byValue) { 'True (ByValue)' }
    elseif ($byName) { 'True (ByPropertyName)' }
    else { 'False' }
}

function Get-PositionText([int] $Position) {
    if ($Position -lt 0) { 'named' } else { [string] $Position }
}

#endregion

#region MAML writing

function Write-Paragraphs([System.Xml.XmlWriter] $Writer, [object] $Text) {
    $paragraphs = @(ConvertTo-Paragraph $Text)
    if (-not $paragraphs) { $paragraphs = @('') }
    foreach ($paragraph in $paragraphs) { $Writer.WriteElementString('maml', 'para', $MamlNamespace, $paragraph) }
}

function Write-Description([System.Xml.XmlWriter] $Writer, [object] $Text) {
    $Writer.WriteStartElement('maml', 'description', $MamlNamespace)
    Write-Paragraphs $Writer $Text
    $Writer.WriteEndElement()
}

function Write-Type([System.Xml.XmlWriter] $Writer, [string] $Name) {
    $Writer.WriteStartElement('dev', 'type', $DevNamespace)
    $Writer.WriteElementString('maml', 'name', $MamlNamespace, $Name)
    $Writer.WriteElementString('maml', 'uri', $MamlNamespace, '')
    $Writer.WriteEndElement()
}

# One <command:parameter>, in a syntax item (no description) or in the PARAMETERS section.
function Write-Parameter {
    param(
        [System.Xml.XmlWriter] $Writer,
        [System.Management.Automation.ParameterMetadata] $Parameter,
        [bool] $Required,
        [int] $Position,
        [string] $PipelineInput,
        [object] $Description,
        [string] $DefaultValue,
        [switch] $InSyntax
    )
    $isSwitch = $Parameter.SwitchParameter
    $aliases = @($Parameter.Aliases | Sort-Object)
    $globbing = @($Parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }).Count -gt 0
    $Writer.WriteStartElement('command', 'parameter', $CommandNamespace)
    $Writer.WriteAttributeString('required', $Required.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', $Parameter.ParameterType.IsArray.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('globbing', $globbing.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('pipelineInput', $PipelineInput)
    $Writer.WriteAttributeString('position', (Get-PositionText $Position))
    $Writer.WriteAttributeString('aliases', $(if ($aliases) { $aliases -join ', ' } else { 'none' }))
    $Writer.WriteElementString('maml', 'name', $MamlNamespace, $Parameter.Name)
    if (-not $InSyntax) { Write-Description $Writer $Description }
    $validValues = @(Get-ValidValue $Parameter)
    if ($validValues) {
        $Writer.WriteStartElement('command', 'parameterValueGroup', $CommandNamespace)
        foreach ($value in $validValues) {
            $Writer.WriteStartElement('command', 'parameterValue', $CommandNamespace)
            $Writer.WriteAttributeString('required', 'false')
            $Writer.WriteAttributeString('command', 'variableLength', $CommandNamespace, 'false')
            $Writer.WriteString($value)
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }
    # A switch takes no value: leave it out of the syntax, as Get-Help shows it as [-Name].
    if (-not ($isSwitch -and $InSyntax)) {
        $Writer.WriteStartElement('command', 'parameterValue', $CommandNamespace)
        $Writer.WriteAttributeString('required', (-not $isSwitch).ToString().ToLowerInvariant())
        $Writer.WriteAttributeString('variableLength', $Parameter.ParameterType.IsArray.ToString().ToLowerInvariant())
        $Writer.WriteString((Get-TypeDisplayName $Parameter.ParameterType))
        $Writer.WriteEndElement()
    }
    Write-Type $Writer (Get-TypeFullName $Parameter.ParameterType)
    $Writer.WriteElementString('dev', 'defaultValue', $DevNamespace, $DefaultValue)
    $Writer.WriteEndElement()
}

function Get-ParameterDescription([hashtable] $Source, [string] $Name) {
    $entry = $Source.Parameters[$Name]
    if ($entry -is [hashtable]) { $entry['Description'] } else { $entry }
}

function Get-ParameterDefault([hashtable] $Source, [System.Management.Automation.ParameterMetadata] $Parameter) {
    $entry = $Source.Parameters[$Parameter.Name]
    if ($entry -is [hashtable] -and $entry.ContainsKey('DefaultValue')) { return [string] $entry['DefaultValue'] }
    if ($Parameter.SwitchParameter) { 'False' } else { 'None' }
}

function Write-Command([System.Xml.XmlWriter] $Writer, [System.Management.Automation.CommandInfo] $Command, [hashtable] $Source, [string[]] $Documented) {
    $Writer.WriteStartElement('command', 'command', $CommandNamespace)
    $Writer.WriteAttributeString('xmlns', 'maml', $null, $MamlNamespace)
    $Writer.WriteAttributeString('xmlns', 'command', $null, $CommandNamespace)
    $Writer.WriteAttributeString('xmlns', 'dev', $null, $DevNamespace)
    $Writer.WriteAttributeString('xmlns', 'MSHelp', $null, $MSHelpNamespace)

    $Writer.WriteStartElement('command', 'details', $CommandNamespace)
    $Writer.WriteElementString('command', 'name', $CommandNamespace, $Command.Name)
    $Writer.WriteElementString('command', 'verb', $CommandNamespace, $Command.Verb)
    $Writer.WriteElementString('command', 'noun', $CommandNamespace, $Command.Noun)
    Write-Description $Writer $Source.Synopsis
    $Writer.WriteEndElement()

    Write-Description $Writer $Source.Description

    # SYNTAX: one item per parameter set, the default set first, then by name; positional parameters by position,
    # then mandatory ones, then the rest, each group in declaration order.
    $Writer.WriteStartElement('command', 'syntax', $CommandNamespace)
    $sets = @($Command.ParameterSets | Sort-Object { -not $_.IsDefault }, Name)
    foreach ($set in $sets) {
        $Writer.WriteStartElement('command', 'syntaxItem', $CommandNamespace)
        $Writer.WriteElementString('maml', 'name', $MamlNamespace, $Command.Name)
        $index = 0
        $ordered = $set.Parameters | Where-Object Name -In $Documented | ForEach-Object { [pscustomobject]@{ Metadata = $_; Index = $index++ } } |
            Sort-Object { if ($_.Metadata.Position -ge 0) { 0 } elseif ($_.Metadata.IsMandatory) { 1 } else { 2 } },
                        { if ($_.Metadata.Position -ge 0) { $_.Metadata.Position } else { 0 } }, Index
        foreach ($item in $ordered) {
            $inSet = $item.Metadata
            $parameter = $Command.Parameters[$inSet.Name]
            Write-Parameter -Writer $Writer -Parameter $parameter -Required $inSet.IsMandatory -Position $inSet.Position `
                -PipelineInput (Get-PipelineInputText @($inSet)) -DefaultValue (Get-ParameterDefault $Source $parameter) -InSyntax
        }
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    # PARAMETERS: sorted by name, as Get-Help lists them.
    $Writer.WriteStartElement('command', 'parameters', $CommandNamespace)
    foreach ($name in $Documented | Sort-Object) {
        $parameter = $Command.Parameters[$name]
        $main = Get-MainSetMetadata $Command $parameter
        $description = if ($StandardParameters.Contains($name)) { $StandardParameters[$name] } else { Get-ParameterDescription $Source $name }
        Write-Parameter -Writer $Writer -Parameter $parameter -Required $main.IsMandatory -Position $main.Position `
            -PipelineInput (Get-PipelineInputText @($parameter.ParameterSets.Values)) -Description $description `
            -DefaultValue (Get-ParameterDefault $Source $parameter)
    }
    $Writer.WriteEndElement()

    foreach ($section in @(
            @{ Key = 'Inputs'; List = 'inputTypes'; Item = 'inputType' }
            @{ Key = 'Outputs'; List = 'returnValues'; Item = 'returnValue' })) {
        $Writer.WriteStartElement('command', $section.List, $CommandNamespace)
        foreach ($entry in @($Source[$section.Key])) {
            $Writer.WriteStartElement('command', $section.Item, $CommandNamespace)
            $Writer.WriteStartElement('dev', 'type', $DevNamespace)
            $Writer.WriteElementString('maml', 'name', $MamlNamespace, $entry.Type)
            $Writer.WriteEndElement()
            Write-Description $Writer $entry.Description
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }

    $Writer.WriteStartElement('maml', 'alertSet', $MamlNamespace)
    if ($Source.ContainsKey('Notes') -and $Source.Notes) {
        $Writer.WriteStartElement('maml', 'alert', $MamlNamespace)
        Write-Paragraphs $Writer $Source.Notes
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'examples', $CommandNamespace)
    $number = 0
    foreach ($example in @($Source.Examples)) {
        $number++
        $Writer.WriteStartElement('command', 'example', $CommandNamespace)
        $Writer.WriteElementString('maml', 'title', $MamlNamespace, "-------------------------- Example ${number}: $($example.Title) --------------------------")
        $code = (([string] $example.Code) -replace "`r`n?", "`n").Trim("`n").TrimEnd()
        $Writer.WriteElementString('dev', 'code', $DevNamespace, $code)
        $Writer.WriteStartElement('dev', 'remarks', $DevNamespace)
        Write-Paragraphs $Writer $example.Remarks
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'relatedLinks', $CommandNamespace)
    foreach ($link in @(if ($Source.ContainsKey('Links')) { $Source.Links })) {
        $text, $uri = if ($link -is [hashtable]) { $link['Text'], $link['Uri'] }
                      elseif ($link -match '^https?://') { $link, $link }
                      else { $link, '' }
        $Writer.WriteStartElement('maml', 'navigationLink', $MamlNamespace)
        $Writer.WriteElementString('maml', 'linkText', $MamlNamespace, [string] $text)
        $Writer.WriteElementString('maml', 'uri', $MamlNamespace, [string] $uri)
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteEndElement()
}

#endregion

$module = Import-Module (Resolve-Path -LiteralPath $ModulePath).Path -PassThru -Force
$moduleName = $module.Name
$listed = @((Import-PowerShellDataFile (Join-Path $module.ModuleBase "$moduleName.psd1")).CmdletsToExport)
$common = [System.Management.Automation.PSCmdlet]::CommonParameters
$commands = @(Get-Command -Module $moduleName -CommandType Cmdlet | Sort-Object Name)

$sources = @{}
foreach ($file in Get-ChildItem -LiteralPath $SourcePath -Filter '*.psd1' -File) {
    $name = $file.BaseName
    if ($name -notin $commands.Name) {
        # A source may be written before its cmdlet, if the manifest lists the cmdlet; anything else is a stray file.
        if ($name -in $listed) { Write-Host "Help source $($file.Name): $name is not implemented yet; skipped." }
        else { $Problems.Add("$($file.FullName): the module has no cmdlet $name (is the file name a Verb-Noun cmdlet name?).") }
        continue
    }
    $sources[$name] = Read-HelpSource $file.FullName $name
}

$documentedByCommand = @{}
foreach ($command in $commands) {
    $source = $sources[$command.Name]
    if (-not $sources.ContainsKey($command.Name)) {
        $Problems.Add("$($command.Name) has no help source: write $(Join-Path $SourcePath "$($command.Name).psd1") (copy another cmdlet's file).")
        continue
    }
    if ($null -eq $source) { continue }
    $where = Join-Path $SourcePath "$($command.Name).psd1"
    $documented = @($command.Parameters.Keys | Where-Object { $_ -notin $common } | Sort-Object)
    $described = @(if ($source.ContainsKey('Parameters') -and $source.Parameters) { $source.Parameters.Keys })
    foreach ($name in $documented) {
        if ($StandardParameters.Contains($name)) {
            if ($name -in $described) { $Problems.Add("${where}: -$name is described by the generator; remove it from Parameters.") }
            continue
        }
        if ($name -notin $described) { $Problems.Add("${where}: parameter -$name of $($command.Name) has no description."); continue }
        $entry = $source.Parameters[$name]
        if ($entry -is [hashtable]) { Test-Key $entry $ParameterKeys "$where (-$name)" }
        if (-not @(ConvertTo-Paragraph (Get-ParameterDescription $source $name))) {
            $Problems.Add("${where}: the description of -$name is empty.")
        }
    }
    foreach ($name in $described | Sort-Object) {
        if ($name -notin $documented) { $Problems.Add("${where}: describes -$name, which $($command.Name) does not have.") }
    }
    $outputs = @(if ($source.ContainsKey('Outputs')) { @($source.Outputs) | Where-Object { $_ -is [hashtable] } | ForEach-Object { $_['Type'] } })
    foreach ($type in @($command.OutputType | ForEach-Object { $_.Type } | Where-Object { $_ })) {
        if ($type.FullName -notin $outputs) { $Problems.Add("${where}: $($command.Name) declares the output type $($type.FullName); list it in Outputs.") }
    }
    $documentedByCommand[$command.Name] = $documented
}

if ($Problems.Count) {
    foreach ($problem in $Problems) { [Console]::Error.WriteLine("Help: $problem") }
    throw "The help sources in $SourcePath have $($Problems.Count) problem(s); see the lines above."
}

$settings = [System.Xml.XmlWriterSettings]@{
    Indent             = $true
    IndentChars        = '  '
    NewLineChars       = "`n"
    NewLineHandling    = 'Replace'
    Encoding           = [Text.UTF8Encoding]::new($false)
    OmitXmlDeclaration = $false
}
$buffer = [IO.MemoryStream]::new()
$writer = [System.Xml.XmlWriter]::Create($buffer, $settings)
$writer.WriteStartDocument()
$writer.WriteComment("`n  GENERATED by help/Build-ModuleHelp.ps1 (run by build.ps1) from help/<Cmdlet>.psd1 and the cmdlets' metadata.`n  Do not edit: change the help sources in help/ and rebuild.`n")
$writer.WriteStartElement('helpItems', 'http://msh')
$writer.WriteAttributeString('schema', 'maml')
foreach ($command in $commands) {
    Write-Command $writer $command $sources[$command.Name] $documentedByCommand[$command.Name]
}
$writer.WriteEndElement()
$writer.WriteEndDocument()
$writer.Flush()
$bytes = $buffer.ToArray() + [Text.Encoding]::UTF8.GetBytes("`n")
$writer.Dispose()

foreach ($path in $OutputPath) {
    $full = [IO.Path]::GetFullPath($path)
    $existing = if (Test-Path -LiteralPath $full) { [IO.File]::ReadAllBytes($full) } else { $null }
    if ($null -ne $existing -and [Linq.Enumerable]::SequenceEqual([byte[]] $existing, [byte[]] $bytes)) {
        Write-Host "Help unchanged: $full"
        continue
    }
    New-Item -ItemType Directory -Path (Split-Path $full) -Force | Out-Null
    [IO.File]::WriteAllBytes($full, $bytes)
    Write-Host "Help written: $full ($($commands.Count) cmdlets)"
}
