# New-SDImageGrid: the layout of an X/Y plot and of a plain grid (sheet size, and the cell each image lands in, found by
# its pixels), the labels and captions drawn (ink where they go, different for different text), the record that lists
# the members, Save-SDImage/Import-SDImage of a sheet, other kinds of input, and the errors. Test images are noise made
# in memory, so a misplaced or resampled pixel shows; one sheet is made from generated images.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule

    function New-TestImage([long] $Seed, [string] $Scheduler = 'Euler', [int] $Steps = 20, [int] $Size = 64, [int] $Noise = $Seed) {
        $record = [PSStableDiffusion.Engine.GenerationRecord]@{
            Prompt = "a test $Seed"; Seed = $Seed; Steps = $Steps; GuidanceScale = 7.5; Scheduler = $Scheduler; Width = $Size; Height = $Size
            PipelineKind = 'Img2Img'; Strength = 0.25 * ($Seed % 4)
        }
        $pixels = [byte[]]::new($Size * $Size * 3)
        [Random]::new($Noise).NextBytes($pixels)
        [PSStableDiffusion.Engine.SDImage]::new($Size, $Size, $pixels, $record)
    }

    # The pixels of a rectangle of an image, as RGB bytes.
    function Get-Region($Image, [int] $X, [int] $Y, [int] $Width, [int] $Height) {
        $region = [byte[]]::new($Width * $Height * 3)
        for ($row = 0; $row -lt $Height; $row++) {
            [Array]::Copy($Image.Pixels, (($Y + $row) * $Image.Width + $X) * 3, $region, $row * $Width * 3, $Width * 3)
        }
        , $region
    }

    # How many pixels of a region are dark (text is black on white).
    function Get-InkCount([byte[]] $Region) {
        $count = 0
        for ($i = 0; $i -lt $Region.Length; $i += 3) { if ($Region[$i] -lt 128 -and $Region[$i + 1] -lt 128 -and $Region[$i + 2] -lt 128) { $count++ } }
        $count
    }

    function Test-SameBytes([byte[]] $A, [byte[]] $B) { [Linq.Enumerable]::SequenceEqual($A, $B) }
}

Describe 'New-SDImageGrid' {
    Context 'An X/Y plot: -X Seed -Y Scheduler' {
        BeforeAll {
            $script:inputs = @(
                New-TestImage -Seed 1 -Scheduler 'Euler a'
                New-TestImage -Seed 2 -Scheduler 'Euler a'
                New-TestImage -Seed 3 -Scheduler 'Euler a'
                New-TestImage -Seed 1 -Scheduler 'DDIM'
                New-TestImage -Seed 3 -Scheduler 'DDIM' -Noise 33
            )
            $script:sheet = $inputs | New-SDImageGrid -X Seed -Y Scheduler
            $script:plot = $sheet.Record.ContactSheet
        }

        It 'writes one SDImage' {
            @($sheet).Count | Should -Be 1
            $sheet | Should -BeOfType [PSStableDiffusion.Engine.SDImage]
        }

        It 'has a column per seed and a row per scheduler, labelled with their values in input order' {
            $plot.Columns | Should -Be 3
            $plot.Rows | Should -Be 2
            $plot.ColumnLabels | Should -Be @('Seed: 1', 'Seed: 2', 'Seed: 3')
            $plot.RowLabels | Should -Be @('Scheduler: Euler a', 'Scheduler: DDIM')
            $plot.XAxis | Should -Be 'Seed'
            $plot.YAxis | Should -Be 'Scheduler'
        }

        It 'puts image <_> in the cell of its seed and scheduler, pixel for pixel' -ForEach (0..4) {
            $member = $plot.Members[$_]
            $image = $inputs[$_]
            $member.Column | Should -Be (@(1, 2, 3).IndexOf([int] $image.Seed))
            $member.Row | Should -Be (@('Euler a', 'DDIM').IndexOf($image.Scheduler))
            Test-SameBytes (Get-Region $sheet $member.X $member.Y 64 64) $image.Pixels | Should -BeTrue
            $member.Record.Seed | Should -Be $image.Seed
            $member.Record.Scheduler | Should -Be $image.Scheduler
        }

        It 'lays cells out on a regular grid after the label margins, filling the sheet' {
            $left = $plot.Members[0].X
            $top = $plot.Members[0].Y
            $left | Should -BeGreaterThan 0 -Because 'row labels take a left margin'
            $top | Should -BeGreaterThan 0 -Because 'column labels take a top margin'
            foreach ($member in $plot.Members) {
                $member.X | Should -Be ($left + 64 * $member.Column)
                $member.Y | Should -Be ($top + 64 * $member.Row)
            }
            $sheet.Width | Should -Be ($left + 3 * 64)
            $sheet.Height | Should -Be ($top + 2 * 64)
        }

        It 'leaves the missing combination (seed 2, DDIM) an empty cell of one grey' {
            $empty = Get-Region $sheet ($plot.Members[0].X + 64) ($plot.Members[0].Y + 64) 64 64
            @($empty | Select-Object -Unique) | Should -Be @(232)
        }

        It 'draws each column label above its column and each row label left of its row, different text giving different pixels' {
            $top = $plot.Members[0].Y
            $left = $plot.Members[0].X
            $columns = 0..2 | ForEach-Object { , (Get-Region $sheet ($left + 64 * $_) 0 64 $top) }
            $rows = 0..1 | ForEach-Object { , (Get-Region $sheet 0 ($top + 64 * $_) $left 64) }
            foreach ($region in $columns + $rows) { Get-InkCount $region | Should -BeGreaterThan 10 }
            Test-SameBytes $columns[0] $columns[1] | Should -BeFalse
            Test-SameBytes $columns[1] $columns[2] | Should -BeFalse
            Test-SameBytes $rows[0] $rows[1] | Should -BeFalse
            Get-InkCount (Get-Region $sheet 0 0 $left $top) | Should -Be 0 -Because 'the corner has no label'
        }

        It 'draws the same label the same way on another sheet' {
            $other = $inputs[1], $inputs[0] | New-SDImageGrid -X Seed
            $otherTop = $other.Record.ContactSheet.Members[0].Y
            $otherTop | Should -Be $plot.Members[0].Y
            # "Seed: 1" is column 0 here and column 1 there.
            Test-SameBytes (Get-Region $sheet $plot.Members[0].X 0 64 $otherTop) (Get-Region $other 64 0 64 $otherTop) | Should -BeTrue
        }
    }

    Context 'Script blocks, record properties and captions' {
        It 'labels a script-block axis with its result' {
            $sheet = 1..3 | ForEach-Object { New-TestImage -Seed $_ -Steps (10 * $_) } | New-SDImageGrid -X { "$($_.Steps) steps" }
            $sheet.Record.ContactSheet.ColumnLabels | Should -Be @('10 steps', '20 steps', '30 steps')
            $sheet.Record.ContactSheet.XAxis | Should -Be '{ "$($_.Steps) steps" }'
            $sheet.Record.ContactSheet.Rows | Should -Be 1
        }

        It 'takes a property of the record when the image has none of that name (Strength)' {
            $sheet = 1..3 | ForEach-Object { New-TestImage -Seed $_ } | New-SDImageGrid -Y Strength
            $sheet.Record.ContactSheet.RowLabels | Should -Be @('Strength: 0.25', 'Strength: 0.5', 'Strength: 0.75')
            $sheet.Record.ContactSheet.Columns | Should -Be 1
        }

        It 'writes -Label captions under the captioned images, in the strip below each image' {
            $images = 1..4 | ForEach-Object { New-TestImage -Seed $_ }
            $sheet = $images | New-SDImageGrid -Columns 2 -Label { if ($_.Seed -ne 2) { "seed $($_.Seed)" } }
            $members = $sheet.Record.ContactSheet.Members
            $members[0].Caption | Should -Be 'seed 1'
            $members[1].Caption | Should -BeNullOrEmpty
            $members[3].Caption | Should -Be 'seed 4'
            $strip = $sheet.Height / 2 - 64
            $strip | Should -BeGreaterThan 0
            Get-InkCount (Get-Region $sheet 0 64 64 $strip) | Should -BeGreaterThan 10
            Get-InkCount (Get-Region $sheet 64 64 64 $strip) | Should -Be 0 -Because 'the second image has no caption'
            Test-SameBytes (Get-Region $sheet 0 (64 + $strip) 64 64) $images[2].Pixels | Should -BeTrue
            $sheet.Record.ContactSheet.LabelBy | Should -Match 'Seed'
        }
    }

    Context 'Plain grids' {
        It 'lays out -Columns 3 left to right, then top to bottom, with -Spacing between cells' {
            $images = 1..5 | ForEach-Object { New-TestImage -Seed $_ -Size 32 }
            $sheet = $images | New-SDImageGrid -Columns 3 -Spacing 4
            $sheet.Width | Should -Be (3 * 32 + 2 * 4)
            $sheet.Height | Should -Be (2 * 32 + 4)
            for ($i = 0; $i -lt 5; $i++) {
                Test-SameBytes (Get-Region $sheet (36 * ($i % 3)) (36 * [Math]::Floor($i / 3)) 32 32) $images[$i].Pixels | Should -BeTrue
            }
        }

        It 'is as square as the web UI''s grid without -Columns (10 images: 4 x 3)' {
            $sheet = 1..10 | ForEach-Object { New-TestImage -Seed $_ -Size 16 } | New-SDImageGrid
            ($sheet.Width, $sheet.Height) | Should -Be @(64, 48)
        }

        It 'takes an array through -Image, paths and deserialized images' {
            $a = New-TestImage -Seed 1 -Size 16
            $b = New-TestImage -Seed 2 -Size 16
            $path = ($b | Save-SDImage (Join-Path $TestDrive 'b.png')).FullName
            $a | Export-Clixml (Join-Path $TestDrive 'a.xml')
            $deserialized = Import-Clixml (Join-Path $TestDrive 'a.xml')
            $sheet = New-SDImageGrid -Image $deserialized, $path -Columns 2
            Test-SameBytes (Get-Region $sheet 0 0 16 16) $a.Pixels | Should -BeTrue
            Test-SameBytes (Get-Region $sheet 16 0 16 16) $b.Pixels | Should -BeTrue
            $sheet.Record.ContactSheet.Members[1].SourcePath | Should -Be $path
        }
    }

    Context 'Saving and reading a sheet' {
        It 'is saved by Save-SDImage and read back with its members'' records' {
            $images = 1..2 | ForEach-Object { New-TestImage -Seed $_ }
            $file = $images | New-SDImageGrid -X Seed -Label Prompt | Save-SDImage (Join-Path $TestDrive 'sheet.png')
            $read = Import-SDImage $file.FullName
            $png = Read-SDTestPng $file.FullName
            ($png.Width, $png.Height) | Should -Be @($read.Width, $read.Height)
            $members = $read.Record.ContactSheet.Members
            $members.Record.Seed | Should -Be @(1, 2)
            $members.Record.Prompt | Should -Be @('a test 1', 'a test 2')
            $members.Caption | Should -Be @('Prompt: a test 1', 'Prompt: a test 2')
            Test-SameBytes (Get-Region $png $members[1].X $members[1].Y 64 64) $images[1].Pixels | Should -BeTrue
        }

        It 'puts generated images on a sheet' {
            $call = Get-SDGoldenCall -Case txt2img_v
            $generated = @(New-SDTestImage $call)
            $sheet = $generated | New-SDImageGrid -X Seed
            $member = $sheet.Record.ContactSheet.Members[0]
            Test-SameBytes (Get-Region $sheet $member.X $member.Y $generated[0].Width $generated[0].Height) $generated[0].Pixels | Should -BeTrue
            $member.Record.ModelHash | Should -Be $generated[0].Record.ModelHash
        }
    }

    Context 'Errors' {
        It 'refuses two images in one cell (GridCellTaken), naming both' {
            $error1 = Get-SDCommandError { 1, 2, 1 | ForEach-Object { New-TestImage -Seed $_ } | New-SDImageGrid -X Seed }
            $error1.FullyQualifiedErrorId | Should -Be 'GridCellTaken,PSStableDiffusion.NewSDImageGridCommand'
            $error1.CategoryInfo.Category | Should -Be 'InvalidArgument'
            $error1.Exception.Message | Should -Match "Images 1 and 3 .*'Seed: 1'"
        }

        It 'names the properties there are for an unknown one (GridPropertyNotFound)' {
            $error1 = Get-SDCommandError { New-TestImage -Seed 1 | New-SDImageGrid -X Sede }
            $error1.FullyQualifiedErrorId | Should -Be 'GridPropertyNotFound,PSStableDiffusion.NewSDImageGridCommand'
            $error1.Exception.Message | Should -Match "'Sede'.*Seed"
        }

        It 'refuses a selector that is neither a name nor a script block (InvalidGridSelector)' {
            $error1 = Get-SDCommandError { New-TestImage -Seed 1 | New-SDImageGrid -Label 5 }
            $error1.FullyQualifiedErrorId | Should -Be 'InvalidGridSelector,PSStableDiffusion.NewSDImageGridCommand'
        }

        It 'reports a failing script block (GridScriptBlockFailed)' {
            $error1 = Get-SDCommandError { New-TestImage -Seed 1 | New-SDImageGrid -X { throw 'no value' } }
            $error1.FullyQualifiedErrorId | Should -Be 'GridScriptBlockFailed,PSStableDiffusion.NewSDImageGridCommand'
            $error1.Exception.Message | Should -Match 'no value'
        }

        It 'refuses a sheet over the size limits (GridTooLarge) and writes no image' {
            $big = [PSStableDiffusion.Engine.SDImage]::new(4096, 4096, [byte[]]::new(4096 * 4096 * 3))
            $output = $null
            $error1 = try { $output = $big, $big, $big, $big, $big | New-SDImageGrid -Columns 5 } catch { $_ }
            $error1.FullyQualifiedErrorId | Should -Be 'GridTooLarge,PSStableDiffusion.NewSDImageGridCommand'
            $error1.CategoryInfo.Category | Should -Be 'LimitsExceeded'
            $error1.Exception.Message | Should -Match '20480x4096'
            $output | Should -BeNullOrEmpty
        }

        It 'says so when no image came in (NoImages)' {
            $error1 = Get-SDCommandError { @() | New-SDImageGrid }
            $error1.FullyQualifiedErrorId | Should -Be 'NoImages,PSStableDiffusion.NewSDImageGridCommand'
        }
    }
}
