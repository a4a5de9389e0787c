# Get-SDDepthMap on the tiny DPT-Hybrid of tests/golden/depth_estimator inside the depth2img model (as
# stable-diffusion-2-depth ships it), and alone: the one-line pipe to a 16-bit PNG, -DepthMap reading it back without
# loss, -Normalize, the record, the edge cases of issue 15 (1x1, constant), errors, and Get-SDModel's estimator column.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $null = Import-SDModule
    $golden = Join-Path (Get-SDRepoRoot) 'tests/golden'
    # The depth model with its estimator: depth2img's components, the whole pipeline's index, depth_estimator/ and
    # feature_extractor/ (the layout of stable-diffusion-2-depth).
    $script:depthModel = Copy-SDGoldenModel -Case depth2img -Destination (Join-Path $TestDrive 'sd2-depth')
    Copy-Item (Join-Path $golden 'depth2img_estimated/model_index.json') $depthModel -Force
    Copy-Item (Join-Path $golden 'depth_estimator/depth_estimator') $depthModel -Recurse
    Copy-Item (Join-Path $golden 'depth_estimator/feature_extractor') $depthModel -Recurse
    $script:photo = Join-Path $golden 'depth_estimator/input0.png'       # 96x60
    $script:tallPhoto = Join-Path $golden 'depth_estimator/input1.png'   # 41x73
    $script:noEstimator = Get-SDGoldenModelPath -Case depth2img
    $script:textToImage = Get-SDGoldenModelPath -Case img2img
}

Describe 'Get-SDDepthMap' {
    Context 'To a 16-bit PNG and back' {
        BeforeAll {
            $script:file = Get-SDDepthMap $photo -Model $depthModel | Save-SDImage (Join-Path $TestDrive 'depth.png')
            $script:map = Get-SDDepthMap $photo -Model $depthModel
        }

        It 'is one line from a photo to a depth PNG' {
            $file | Should -BeOfType [System.IO.FileInfo]
            $file.Name | Should -Be 'depth.png'
        }

        It 'writes a 16-bit grayscale PNG of the image''s size' {
            $bytes = [System.IO.File]::ReadAllBytes($file.FullName)
            [System.Buffers.Binary.BinaryPrimitives]::ReadInt32BigEndian([byte[]] $bytes[16..19]) | Should -Be 96
            [System.Buffers.Binary.BinaryPrimitives]::ReadInt32BigEndian([byte[]] $bytes[20..23]) | Should -Be 60
            $bytes[24] | Should -Be 16 -Because 'bit depth'
            $bytes[25] | Should -Be 0 -Because 'colour type 0 is grayscale'
        }

        It 'gives an SDImage of 16-bit levels, the prediction scaled by its peak' {
            $map | Should -BeOfType [PSStableDiffusion.Engine.SDImage]
            ($map.Width, $map.Height) | Should -Be @(96, 60)
            $map.Gray16.BitDepth | Should -Be 16
            ($map.Gray16.Values | Measure-Object -Maximum).Maximum | Should -Be 65535
            $map.Record.DepthNormalized | Should -BeFalse
            $map.Record.DepthRange[0] | Should -Be 0
        }

        It 'takes -Precision Auto as Float32, the default (the suite pins Float32, so this names Auto)' {
            $auto = Get-SDDepthMap $photo -Model $depthModel -Precision Auto
            [Linq.Enumerable]::SequenceEqual([uint16[]] $auto.Gray16.Values, [uint16[]] $map.Gray16.Values) | Should -BeTrue
        }

        It 'records the estimator, its hash, the source image and the model' {
            $record = $map.Record
            $record.Depth | Should -BeExactly 'estimated (DPT-Hybrid)'
            $record.DepthEstimatorHash | Should -Match '^[0-9a-f]{64}$'
            $record.SourceImageHash | Should -Be (Import-SDImage $photo).ComputeContentHash()
            $record.ModelPath | Should -Be $depthModel
            $record.Timings['depth_estimation'] | Should -BeGreaterThan 0
        }

        It 'reads back without loss: Import-SDImage and -DepthMap get the same levels' {
            $imported = Import-SDImage $file.FullName
            [System.Linq.Enumerable]::SequenceEqual([uint16[]] $imported.Gray16.Values, [uint16[]] $map.Gray16.Values) | Should -BeTrue
            $imported.Record.DepthEstimatorHash | Should -Be $map.Record.DepthEstimatorHash
            $common = @{ Prompt = 'a cabin'; InitImage = $photo; Model = $depthModel; Steps = 2; Seed = 4; Strength = 0.5 }
            $fromFile = New-SDImage @common -DepthMap $file.FullName
            $fromObject = New-SDImage @common -DepthMap $map
            $fromFile.Record.Depth | Should -Be 'given'
            Get-SDPixelDifference $fromFile.Pixels $fromObject.Pixels | Should -Be 0
        }

        It 'survives serialization with its 16 bits (jobs, remoting, Export-Clixml)' {
            $clixml = Join-Path $TestDrive 'depth.clixml'
            $map | Export-Clixml $clixml
            $back = [PSStableDiffusion.Engine.SDImage] (Import-Clixml $clixml)
            [System.Linq.Enumerable]::SequenceEqual([uint16[]] $back.Gray16.Values, [uint16[]] $map.Gray16.Values) | Should -BeTrue
        }

        It '-Normalize spans 0..65535 and records the range' {
            $normalized = Get-SDDepthMap $photo -Model $depthModel -Normalize
            $stats = $normalized.Gray16.Values | Measure-Object -Minimum -Maximum
            ($stats.Minimum, $stats.Maximum) | Should -Be @(0, 65535)
            $normalized.Record.DepthNormalized | Should -BeTrue
            $normalized.Record.DepthRange[1] | Should -Be $map.Record.DepthRange[1]
            $normalized.Record.DepthRange[0] | Should -BeLessThan $normalized.Record.DepthRange[1]
        }
    }

    Context 'Inputs and models' {
        It 'takes files from Get-ChildItem and writes one map per image, of its size' {
            $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'photos')
            Copy-Item $photo, $tallPhoto $folder
            $maps = @(Get-ChildItem $folder -Filter *.png | Sort-Object Name | Get-SDDepthMap -Model $depthModel)
            $maps.Count | Should -Be 2
            ($maps[1].Width, $maps[1].Height) | Should -Be @(41, 73)
        }

        It 'runs a DPT folder alone, with the same result as the depth model' {
            $dpt = New-Item -ItemType Directory (Join-Path $TestDrive 'dpt-alone')
            Copy-Item (Join-Path $depthModel 'depth_estimator/*') $dpt
            Copy-Item (Join-Path $depthModel 'feature_extractor/preprocessor_config.json') $dpt
            $alone = Get-SDDepthMap $photo -Model $dpt.FullName
            $withModel = Get-SDDepthMap $photo -Model $depthModel
            [System.Linq.Enumerable]::SequenceEqual([uint16[]] $alone.Gray16.Values, [uint16[]] $withModel.Gray16.Values) | Should -BeTrue
            Get-SDEngine | Where-Object Model -eq $dpt.FullName | Select-Object -ExpandProperty Kind | Should -Be 'depth estimator (DPT-Hybrid)'
        }

        It 'estimates a 1x1 image: a flat normalised map, with a warning' {
            $pixel = [PSStableDiffusion.Engine.SDImage]::new(1, 1, [byte[]] (200, 10, 30))
            $map = Get-SDDepthMap $pixel -Model $depthModel -Normalize -WarningVariable warnings 3>$null
            ($map.Width, $map.Height) | Should -Be @(1, 1)
            $map.Gray16.Values[0] | Should -Be 0
            $warnings.Count | Should -Be 1
            "$($warnings[0])" | Should -BeLike '*constant*flat*'
        }

        It 'estimates a constant image (a map, or a flat map with a warning)' {
            $gray = [PSStableDiffusion.Engine.SDImage]::new(40, 24, [byte[]]::new(40 * 24 * 3))
            $map = Get-SDDepthMap $gray -Model $depthModel -Normalize -WarningVariable warnings 3>$null
            ($map.Width, $map.Height) | Should -Be @(40, 24)
            $distinct = @($map.Gray16.Values | Select-Object -Unique).Count
            if ($distinct -eq 1) { $warnings.Count | Should -Be 1 } else { $warnings.Count | Should -Be 0 }
        }
    }

    Context 'Errors' {
        It 'fails with <Id> (<Category>) for <Case>' -ForEach @(
            @{ Case = 'a depth model without an estimator'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Model = 'no-estimator' }
            @{ Case = 'a text-to-image model'; Id = 'ModelMismatch'; Category = 'InvalidOperation'; Model = 'txt2img' }
            @{ Case = 'a model that does not exist'; Id = 'ModelNotFound'; Category = 'ObjectNotFound'; Model = './no/such/model' }
            @{ Case = 'a folder that is no model'; Id = 'ModelNotFound'; Category = 'ObjectNotFound'; Model = 'empty' }
        ) {
            $models = @{ 'no-estimator' = $noEstimator; 'txt2img' = $textToImage; 'empty' = (New-Item -ItemType Directory -Force (Join-Path $TestDrive 'empty')).FullName }
            $model = if ($models.ContainsKey($Model)) { $models[$Model] } else { $Model }
            $out = $null
            $record = Get-SDCommandError { Get-SDDepthMap $photo -Model $model -OutVariable out }
            $record | Should -Not -BeNullOrEmpty -Because 'the call must fail'
            $record.FullyQualifiedErrorId | Should -BeLike "$Id,PSStableDiffusion.GetSDDepthMapCommand"
            $record.CategoryInfo.Category | Should -Be $Category
            $out | Should -BeNullOrEmpty
        }

        It 'says why a depth model without an estimator cannot be used' {
            $record = Get-SDCommandError { Get-SDDepthMap $photo -Model $noEstimator }
            $record.Exception.Message | Should -BeLike '*has no depth estimator*depth_estimator*depth_model*'
        }

        It 'refuses a file that is not an image at binding' {
            $notImage = New-SDNotAnImageFile (Join-Path $TestDrive 'not-an-image.png')
            $record = Get-SDCommandError { Get-SDDepthMap $notImage -Model $depthModel }
            $record.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentTransformationError,PSStableDiffusion.GetSDDepthMapCommand'
        }
    }
}

Describe 'Depth models and their estimator' {
    It 'Get-SDModel shows whether a depth model has its estimator' {
        (Get-SDModel -Path $depthModel).HasDepthEstimator | Should -BeTrue
        (Get-SDModel -Path $noEstimator).HasDepthEstimator | Should -BeFalse
        (Get-SDModel -Path $textToImage).HasDepthEstimator | Should -BeNullOrEmpty
        $table = Get-SDModel -Path $depthModel, $noEstimator | Format-Table | Out-String -Width 400
        $table | Should -BeLike '*depth2img+estimator*'
        $table | Should -BeLike '*depth2img (no estimator)*'
    }

    It 'New-SDImage -InitImage on a depth model with its estimator needs no -DepthMap' {
        $image = New-SDImage 'a cabin' -InitImage $photo -Model $depthModel -Steps 2 -Seed 4 -Strength 0.5
        $image.PipelineKind | Should -Be 'Depth2Img'
        $image.Record.Depth | Should -BeExactly 'estimated (DPT-Hybrid)'
        $image.Record.DepthEstimatorHash | Should -Be (Get-SDDepthMap $photo -Model $depthModel).Record.DepthEstimatorHash
    }
}
