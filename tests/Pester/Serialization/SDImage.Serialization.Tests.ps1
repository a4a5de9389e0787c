# SDImage across process and runspace boundaries: Start-Job, Start-ThreadJob, Export-Clixml/Import-Clixml, a property
# bag deserialized where the module was not loaded, and forged or corrupt bags. A serialized SDImage carries its PNG
# (pixels and record); PSStableDiffusion.Types.ps1xml turns it back into an SDImage.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:modulePath = Get-SDModulePath
    # The smallest real generation (64x64, 2 steps): the jobs load the module and the model in another process, where
    # the suite's pinned -Precision does not reach (Auto may pick bfloat16), so the call names Float32 itself.
    $script:call = @{ Prompt = 'a lighthouse at dawn'; Model = (Get-SDGoldenModelPath -Case txt2img_eps_dpmpp); Width = 64; Height = 64; Steps = 2; Seed = 7; Precision = 'Float32' }
    $script:golden = @(New-SDTestImage $call)[0]
    $script:img2imgModel = Get-SDGoldenModelPath -Case img2img
    $script:depthModel = Get-SDGoldenModelPath -Case depth2img
    $script:depthPath = Get-SDGoldenCasePath -Case depth2img
    $script:deserializedType = 'Deserialized.PSStableDiffusion.Engine.SDImage'

    function Test-SamePixels($Reference, $Difference) {
        [Linq.Enumerable]::SequenceEqual([byte[]] $Reference.Pixels, [byte[]] $Difference.Pixels)
    }

    # Import-Clixml in a runspace without the module: what a session that lacks PSStableDiffusion gets, a property bag.
    function Import-SDClixmlWithoutModule([string] $Path) {
        $runspace = [runspacefactory]::CreateRunspace()
        $runspace.Open()
        try {
            $shell = [powershell]::Create($runspace)
            @($shell.AddCommand('Import-Clixml').AddParameter('LiteralPath', $Path).Invoke())
        }
        finally { $runspace.Dispose() }
    }

    # A property bag as deserialization makes it, with the given properties.
    function New-SDForgedBag([hashtable] $Properties) {
        $bag = [pscustomobject] $Properties
        $bag.pstypenames.Clear()
        $bag.pstypenames.Add($deserializedType)
        $bag.pstypenames.Add('Deserialized.System.Object')
        $bag
    }

    function Get-SDPngBytes($Image) { , [PSStableDiffusion.Engine.Imaging.ImageCodec]::EncodePng($Image) }
}

Describe 'SDImage serialization' {
    Context 'What is serialized' {
        BeforeAll {
            $script:xml = [System.Management.Automation.PSSerializer]::Serialize($golden)
            $script:clixmlPath = Join-Path $TestDrive 'golden.clixml'
            $golden | Export-Clixml -LiteralPath $clixmlPath
            $script:bag = @(Import-SDClixmlWithoutModule $clixmlPath)[0]
        }

        It 'writes the PNG that Save-SDImage writes, and the properties to read without the module' {
            $bag.pstypenames[0] | Should -Be $deserializedType
            [Linq.Enumerable]::SequenceEqual([byte[]] $bag.Png, (Get-SDPngBytes $golden)) | Should -BeTrue
            $bag.Prompt | Should -Be $golden.Prompt
            $bag.Seed | Should -Be $golden.Seed
            $bag.Width | Should -Be $golden.Width
            $bag.Scheduler | Should -Be $golden.Scheduler
            @($bag.psobject.Properties.Name) | Should -Not -Contain 'Pixels' -Because 'the pixels travel as PNG only'
        }

        It 'is rehydrated by deserialization in a session with the module' {
            $back = [System.Management.Automation.PSSerializer]::Deserialize($xml)
            $back | Should -BeOfType [PSStableDiffusion.Engine.SDImage]
            Test-SamePixels $golden $back | Should -BeTrue
            $back.Record.ToJson() | Should -Be $golden.Record.ToJson()
        }

        It 'is rehydrated by a cast of the bag' {
            $cast = [PSStableDiffusion.Engine.SDImage] $bag
            Test-SamePixels $golden $cast | Should -BeTrue
            $cast.Record.ToJson() | Should -Be $golden.Record.ToJson()
        }

        It 'is rehydrated when the bag is piped to Save-SDImage' {
            $file = $bag | Save-SDImage (Join-Path $TestDrive 'from-bag.png')
            $png = Read-SDTestPng $file.FullName
            Get-SDPixelDifference $golden.Pixels $png.Pixels | Should -Be 0
            (Import-SDImage $file.FullName).Record.Seed | Should -Be $golden.Seed
        }

        It 'keeps the Png property off the image''s visible members' {
            @($golden.psobject.Properties.Name) | Should -Not -Contain 'Png'
            ($golden | Format-List * | Out-String) | Should -Not -Match 'Png'
        }
    }

    Context 'Start-Job' {
        It 'brings back an SDImage that Save-SDImage writes, with the pixels and record of the same call in this process' {
            $job = Start-Job -ScriptBlock {
                param($ModulePath, $Call)
                Import-Module $ModulePath
                New-SDImage @Call
            } -ArgumentList $modulePath, $call
            $received = @($job | Receive-Job -Wait -AutoRemoveJob -ErrorAction Stop)
            $received.Count | Should -Be 1
            $received[0] | Should -BeOfType [PSStableDiffusion.Engine.SDImage]
            $file = $received | Save-SDImage (Join-Path $TestDrive 'job.png')
            $png = Read-SDTestPng $file.FullName
            Get-SDPixelDifference $golden.Pixels $png.Pixels | Should -Be 0
            $received[0].Record.Seed | Should -Be $golden.Record.Seed
            $received[0].Record.SchedulerConfig.ToJsonString() | Should -Be $golden.Record.SchedulerConfig.ToJsonString()
        }
    }

    Context 'Start-ThreadJob' {
        It 'brings back SDImages from another runspace that Save-SDImage writes' {
            $received = @(Start-ThreadJob -ScriptBlock {
                    Import-Module $using:modulePath
                    $images = New-SDImage @using:call
                    # and through the serializer inside the thread job, as a pipeline between runspaces might
                    [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($images))
                } | Receive-Job -Wait -AutoRemoveJob -ErrorAction Stop)
            $received.Count | Should -Be 1
            $received[0] | Should -BeOfType [PSStableDiffusion.Engine.SDImage]
            $file = $received | Save-SDImage (Join-Path $TestDrive 'thread-job.png')
            Get-SDPixelDifference $golden.Pixels (Read-SDTestPng $file.FullName).Pixels | Should -Be 0
        }
    }

    Context 'Export-Clixml, then Import-Clixml' {
        BeforeAll {
            $script:clixml = Join-Path $TestDrive 'images.clixml'
            $golden | Export-Clixml -LiteralPath $clixml
            $script:imported = Import-Clixml -LiteralPath $clixml
        }

        It 'gives back an SDImage' {
            $imported | Should -BeOfType [PSStableDiffusion.Engine.SDImage]
            Test-SamePixels $golden $imported | Should -BeTrue
        }

        It 'feeds New-SDImage -InitImage as the original does' {
            $fromOriginal = New-SDImage 'a watercolor' -InitImage $golden -Strength 0.5 -Model $img2imgModel -Steps 2 -Seed 5
            $fromImported = New-SDImage 'a watercolor' -InitImage $imported -Strength 0.5 -Model $img2imgModel -Steps 2 -Seed 5
            Test-SamePixels $fromOriginal $fromImported | Should -BeTrue
            $fromImported.Record.SourceImageHash | Should -Be $golden.ComputeContentHash()
        }

        It 'feeds -InitImage as a bag deserialized without the module' {
            $bag = @(Import-SDClixmlWithoutModule $clixml)[0]
            $bag | Should -Not -BeOfType [PSStableDiffusion.Engine.SDImage]
            $image = New-SDImage 'a watercolor' -InitImage $bag -Strength 0.5 -Model $img2imgModel -Steps 2 -Seed 5
            $image.Record.SourceImageHash | Should -Be $golden.ComputeContentHash()
        }

        It 'replays: piped into New-SDImage it draws the same pixels again' {
            $replayed = @($imported | New-SDImage -Model $call.Model)
            $replayed.Count | Should -Be 1
            Test-SamePixels $golden $replayed[0] | Should -BeTrue
        }
    }

    Context 'A deserialized depth map' {
        It 'drives -DepthMap as the SDImage it came from does, as a bag or rehydrated' {
            $depth = Import-SDImage (Join-Path $depthPath 'input_depth.png')
            $init = Join-Path $depthPath 'input_image.png'
            $clixml = Join-Path $TestDrive 'depth.clixml'
            $depth | Export-Clixml -LiteralPath $clixml
            $bag = @(Import-SDClixmlWithoutModule $clixml)[0]
            $bag.pstypenames[0] | Should -Be $deserializedType
            $arguments = @{ Prompt = 'a cabin'; InitImage = $init; Strength = 0.5; Model = $depthModel; Steps = 2; Seed = 1 }
            $direct = New-SDImage @arguments -DepthMap $depth
            $fromBag = New-SDImage @arguments -DepthMap $bag
            $fromClixml = New-SDImage @arguments -DepthMap (Import-Clixml -LiteralPath $clixml)
            $fromBag.PipelineKind | Should -Be 'Depth2Img'
            Test-SamePixels $direct $fromBag | Should -BeTrue
            Test-SamePixels $direct $fromClixml | Should -BeTrue
        }
    }

    Context 'Forged or corrupt bags' {
        BeforeAll {
            $script:small = [PSStableDiffusion.Engine.SDImage]::new(8, 8, [byte[]]::new(8 * 8 * 3),
                [PSStableDiffusion.Engine.GenerationRecord]@{ Prompt = 'small'; Seed = 3; Steps = 2; Width = 8; Height = 8 })
            $lying = [PSStableDiffusion.Engine.GenerationRecord]@{ Prompt = 'small'; Seed = 3; Width = 512; Height = 512 }
            $script:lyingPng = Get-SDPngBytes ([PSStableDiffusion.Engine.SDImage]::new(8, 8, [byte[]]::new(8 * 8 * 3), $lying))
            $script:goodPng = Get-SDPngBytes $small
            $truncated = [byte[]] $goodPng[0..($goodPng.Length - 20)]
            $badCrc = [byte[]] $goodPng.Clone()
            $badCrc[40] = $badCrc[40] -bxor 0xff
            $script:cases = @(
                @{ Case = 'bytes that are not an image'; Png = [byte[]] (1, 2, 3, 4); Match = 'PNG bytes are not a valid image' }
                @{ Case = 'a truncated PNG'; Png = $truncated; Match = 'PNG bytes are not a valid image' }
                @{ Case = 'a PNG with a damaged chunk'; Png = $badCrc; Match = 'PNG bytes are not a valid image' }
                @{ Case = 'no Png property'; Png = $null; Match = 'no Png property' }
                @{ Case = 'a Png that is text'; Png = 'iVBORw0KGgo='; Match = 'Png property is a String' }
                @{ Case = 'a record whose size is not the PNG''s'; Png = $lyingPng; Match = 'record says 512x512 but the PNG is 8x8' }
            )
        }

        It 'Save-SDImage refuses <Case> with a message that says so, and writes nothing' -ForEach @(
            @{ Case = 'bytes that are not an image'; Index = 0 }
            @{ Case = 'a truncated PNG'; Index = 1 }
            @{ Case = 'a PNG with a damaged chunk'; Index = 2 }
            @{ Case = 'no Png property'; Index = 3 }
            @{ Case = 'a Png that is text'; Index = 4 }
            @{ Case = 'a record whose size is not the PNG''s'; Index = 5 }
        ) {
            $forged = $cases[$Index]
            $properties = @{ Width = 8; Height = 8; Prompt = 'small'; Seed = 3 }
            if ($null -ne $forged.Png) { $properties.Png = $forged.Png }
            $bag = New-SDForgedBag $properties
            $target = Join-Path $TestDrive "forged-$Index.png"
            $err = Get-SDCommandError { $bag | Save-SDImage $target }
            $err | Should -Not -BeNullOrEmpty
            $err.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentTransformationError,*'
            $err.Exception.Message | Should -Match 'Cannot restore a deserialized SDImage'
            $err.Exception.Message | Should -Match ([regex]::Escape($forged.Match))
            $target | Should -Not -Exist
        }

        It 'refuses a bag whose visible <Name> was edited after serialization' -ForEach @(
            @{ Name = 'Seed'; Value = 4 }
            @{ Name = 'Prompt'; Value = 'a different prompt' }
            @{ Name = 'Width'; Value = 16 }
        ) {
            $properties = @{ Png = $goodPng; Width = 8; Height = 8; Prompt = 'small'; Seed = 3; Steps = 2 }
            $properties[$Name] = $Value
            $err = Get-SDCommandError { [PSStableDiffusion.Engine.SDImage] (New-SDForgedBag $properties) }
            $err.Exception.Message | Should -Match "its $Name property \($([regex]::Escape("$Value"))\) disagrees with the record"
        }

        It 'New-SDImage -DepthMap refuses a forged bag with InvalidDeserializedImage' {
            $bag = New-SDForgedBag @{ Png = [byte[]] (1, 2, 3) }
            $err = Get-SDCommandError {
                New-SDImage 'x' -InitImage (Join-Path $depthPath 'input_image.png') -DepthMap $bag -Model $depthModel -Steps 2 -Strength 0.5
            }
            $err.FullyQualifiedErrorId | Should -Be 'InvalidDeserializedImage,PSStableDiffusion.NewSDImageCommand'
            $err.CategoryInfo.Category | Should -Be 'InvalidData'
        }

        It 'the untouched bag of the same image is accepted' {
            $image = [PSStableDiffusion.Engine.SDImage] (New-SDForgedBag @{ Png = $goodPng; Width = 8; Height = 8; Prompt = 'small'; Seed = 3; Steps = 2 })
            Test-SamePixels $small $image | Should -BeTrue
        }
    }
}
