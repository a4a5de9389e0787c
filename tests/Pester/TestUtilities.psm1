# Shared helpers for the Pester tests of PSStableDiffusion. Import with:
#     Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force

Set-StrictMode -Version 3.0

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path

# The golden comparisons need float32, so the suite pins -Precision Float32 (Invoke-PesterSuite.ps1). Cmdlets called
# from this module's functions (New-SDTestImage) read this module's $PSDefaultParameterValues, not the global one:
# the pin is repeated here.
$PSDefaultParameterValues = @{
    'New-SDImage:Precision'      = 'Float32'
    'Invoke-SDInpaint:Precision' = 'Float32'
    'Resize-SDUpscale:Precision' = 'Float32'
}
$script:ModuleName = 'PSStableDiffusion'

# Cmdlets the manifest lists ahead of their implementation. Remove a name in the same change that implements its
# cmdlet: Module.Tests.ps1 fails while an implemented cmdlet is still here, so this list can only shrink.
$script:PendingCmdlets = @(
)

function Get-SDRepoRoot {
    $script:RepoRoot
}

# The built module folder under test: $env:SD_MODULE_PATH (set by build.ps1 -Test), else out/PSStableDiffusion.
function Get-SDModulePath {
    $path = if ($env:SD_MODULE_PATH) { $env:SD_MODULE_PATH } else { Join-Path $script:RepoRoot "out/$script:ModuleName" }
    if (-not (Test-Path -LiteralPath (Join-Path $path "$script:ModuleName.psd1"))) {
        throw "No built module at '$path'. Run: dotnet pwsh ./build.ps1"
    }
    (Resolve-Path -LiteralPath $path).Path
}

# Imports the built module into the global scope and returns it. Refuses a copy loaded from another folder: a binary
# module cannot be unloaded, so the tests would silently run against the wrong build.
function Import-SDModule {
    $path = Get-SDModulePath
    $loaded = Get-Module $script:ModuleName
    if ($loaded -and $loaded.ModuleBase -ne $path) {
        throw "$script:ModuleName is already loaded from '$($loaded.ModuleBase)', not '$path'. Run the tests in a fresh pwsh."
    }
    Import-Module $path -Global -PassThru
}

# The source manifest's data (PSStableDiffusion.psd1 at the repository root).
function Get-SDSourceManifest {
    Import-PowerShellDataFile -LiteralPath (Join-Path $script:RepoRoot "$script:ModuleName.psd1")
}

function Get-SDPendingCmdlet {
    $script:PendingCmdlets
}

# Names (Verb-Noun) of the cmdlet classes that the module's assembly implements, whether or not they are exported.
function Get-SDImplementedCmdlet {
    param([Parameter(Mandatory)] [psmoduleinfo] $Module)
    $Module.ImplementingAssembly.GetExportedTypes() |
        Where-Object { -not $_.IsAbstract } |
        ForEach-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
        ForEach-Object { "$($_.VerbName)-$($_.NounName)" } |
        Sort-Object
}

# tests/golden/<Case>: the diffusers reference data for one pipeline case (see tests/golden/README.md).
function Get-SDGoldenCasePath {
    param([Parameter(Mandatory)] [string] $Case)
    $path = Join-Path $script:RepoRoot "tests/golden/$Case"
    if (-not (Test-Path -LiteralPath (Join-Path $path 'case.json'))) {
        throw "Golden case '$Case' not found: '$path' has no case.json."
    }
    $path
}

# tests/golden/<Case>/model: a tiny diffusers pipeline folder to pass to the cmdlets' -Model parameter.
function Get-SDGoldenModelPath {
    param([Parameter(Mandatory)] [string] $Case)
    $path = Join-Path (Get-SDGoldenCasePath -Case $Case) 'model'
    if (-not (Test-Path -LiteralPath (Join-Path $path 'model_index.json'))) {
        throw "Golden case '$Case' has no diffusers model folder at '$path'."
    }
    $path
}

# The parsed case.json of a golden case (the call's prompt, steps, seed, tolerances...).
function Get-SDGoldenCase {
    param([Parameter(Mandatory)] [string] $Case)
    Get-Content -Raw -LiteralPath (Join-Path (Get-SDGoldenCasePath -Case $Case) 'case.json') | ConvertFrom-Json
}

# The golden case's call as New-SDImage parameters, to splat: Prompt, NegativePrompt, Steps, GuidanceScale, Width,
# Height, Seed and Model (the case's tiny diffusers folder). Diffusers made expected.png from exactly this call.
function Get-SDGoldenCall {
    param([Parameter(Mandatory)] [string] $Case)
    $data = Get-SDGoldenCase -Case $Case
    @{
        Prompt         = $data.call.prompt
        NegativePrompt = $data.call.negative_prompt
        Steps          = [int] $data.call.num_inference_steps
        GuidanceScale  = [double] $data.call.guidance_scale
        Width          = [int] $data.call.width
        Height         = [int] $data.call.height
        Seed           = [long] $data.seed
        Model          = Get-SDGoldenModelPath -Case $Case
    }
}

# The max_abs tolerance that case.json recommends for one tensor (e.g. image_uint8).
function Get-SDGoldenTolerance {
    param([Parameter(Mandatory)] [string] $Case, [Parameter(Mandatory)] [string] $Name)
    $tolerance = (Get-SDGoldenCase -Case $Case).tolerances.$Name
    if ($null -eq $tolerance -or $null -eq $tolerance.max_abs) { throw "Golden case '$Case' states no max_abs tolerance for '$Name'." }
    $tolerance.max_abs
}

# Copies a golden case's model folder into $Destination (e.g. TestDrive) so a test can damage it.
function Copy-SDGoldenModel {
    param([Parameter(Mandatory)] [string] $Case, [Parameter(Mandatory)] [string] $Destination)
    Copy-Item -LiteralPath (Get-SDGoldenModelPath -Case $Case) -Destination $Destination -Recurse -Force
    (Resolve-Path -LiteralPath $Destination).Path
}

# A PNG reader written for the tests, independent of the module's image code (SkiaSharp), and a process-wide store
# for generated images. Compiled once per process.
if (-not ('PSStableDiffusionTests.Png' -as [type])) {
    Add-Type -TypeDefinition @'
using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Text;

namespace PSStableDiffusionTests
{
    public static class Png
    {
        /// <summary>Decodes an 8-bit, non-interlaced gray, RGB, gray+alpha or RGBA PNG to RGB bytes (alpha dropped).</summary>
        public static byte[] ReadRgb(string path, out int width, out int height)
        {
            var data = File.ReadAllBytes(path);
            width = 0; height = 0;
            int colorType = -1;
            var idat = new MemoryStream();
            foreach (var (type, start, length) in Chunks(data))
            {
                if (type == "IHDR")
                {
                    width = BigEndian(data, start);
                    height = BigEndian(data, start + 4);
                    if (data[start + 8] != 8) throw new InvalidDataException("bit depth " + data[start + 8] + " is not supported");
                    colorType = data[start + 9];
                    if (data[start + 12] != 0) throw new InvalidDataException("interlaced PNGs are not supported");
                }
                else if (type == "IDAT") idat.Write(data, start, length);
            }
            int channels = colorType switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new InvalidDataException("color type " + colorType + " is not supported") };
            int stride = width * channels;
            var raw = new byte[height * stride];
            idat.Position = 0;
            using (var zlib = new ZLibStream(idat, CompressionMode.Decompress))
            {
                var previous = new byte[stride];
                var row = new byte[stride];
                for (int y = 0; y < height; y++)
                {
                    int filter = zlib.ReadByte();
                    zlib.ReadExactly(row, 0, stride);
                    for (int i = 0; i < stride; i++)
                    {
                        int left = i >= channels ? row[i - channels] : 0, up = previous[i], upLeft = i >= channels ? previous[i - channels] : 0;
                        row[i] = (byte)(row[i] + filter switch
                        {
                            0 => 0,
                            1 => left,
                            2 => up,
                            3 => (left + up) / 2,
                            4 => Paeth(left, up, upLeft),
                            _ => throw new InvalidDataException("unknown filter " + filter),
                        });
                    }
                    Buffer.BlockCopy(row, 0, raw, y * stride, stride);
                    (previous, row) = (row, previous);
                }
            }
            var rgb = new byte[width * height * 3];
            for (int p = 0; p < width * height; p++)
                for (int c = 0; c < 3; c++)
                    rgb[3 * p + c] = raw[p * channels + (channels < 3 ? 0 : c)];
            return rgb;
        }

        /// <summary>The tEXt and (uncompressed) iTXt chunks, keyword to text.</summary>
        public static Dictionary<string, string> ReadText(string path)
        {
            var data = File.ReadAllBytes(path);
            var texts = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (type, start, length) in Chunks(data))
            {
                if (type != "tEXt" && type != "iTXt") continue;
                int zero = Array.IndexOf(data, (byte)0, start, length);
                var keyword = Encoding.Latin1.GetString(data, start, zero - start);
                if (type == "tEXt")
                {
                    texts[keyword] = Encoding.Latin1.GetString(data, zero + 1, start + length - zero - 1);
                    continue;
                }
                if (data[zero + 1] != 0) continue; // compressed iTXt
                int language = Array.IndexOf(data, (byte)0, zero + 3, start + length - zero - 3);
                int translated = Array.IndexOf(data, (byte)0, language + 1, start + length - language - 1);
                texts[keyword] = Encoding.UTF8.GetString(data, translated + 1, start + length - translated - 1);
            }
            return texts;
        }

        /// <summary>Writes a copy of the PNG without the text chunks (tEXt, iTXt, zTXt) of this keyword, as another
        /// tool that keeps only the others would (chunks are self-contained: the rest stays byte for byte).</summary>
        public static void WriteWithoutText(string path, string keyword, string destination)
        {
            var data = File.ReadAllBytes(path);
            var output = new MemoryStream();
            output.Write(data, 0, 8);
            foreach (var (type, start, length) in Chunks(data))
            {
                bool text = type == "tEXt" || type == "iTXt" || type == "zTXt";
                int zero = text ? Array.IndexOf(data, (byte)0, start, length) : -1;
                if (text && zero > start && Encoding.Latin1.GetString(data, start, zero - start) == keyword) continue;
                output.Write(data, start - 8, length + 12);
            }
            File.WriteAllBytes(destination, output.ToArray());
        }

        public static int MaxAbsDifference(byte[] a, byte[] b)
        {
            if (a.Length != b.Length) throw new ArgumentException("the images have " + a.Length + " and " + b.Length + " bytes");
            int max = 0;
            for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
            return max;
        }

        private static IEnumerable<(string Type, int Start, int Length)> Chunks(byte[] data)
        {
            for (int offset = 8; offset + 12 <= data.Length;)
            {
                int length = BigEndian(data, offset);
                yield return (Encoding.ASCII.GetString(data, offset + 4, 4), offset + 8, length);
                offset += 12 + length;
            }
        }

        private static int BigEndian(byte[] data, int offset) =>
            data[offset] << 24 | data[offset + 1] << 16 | data[offset + 2] << 8 | data[offset + 3];

        private static int Paeth(int a, int b, int c)
        {
            int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
            return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        }
    }

    /// <summary>Images generated by the tests, shared by every test file of the run (keyed by the call).</summary>
    public static class GeneratedImages
    {
        public static readonly Dictionary<string, object[]> ByCall = new Dictionary<string, object[]>(StringComparer.Ordinal);
    }
}
'@
}

# Reads a PNG with the tests' own decoder: Width, Height and Pixels (RGB bytes, as SDImage.Pixels).
function Read-SDTestPng {
    param([Parameter(Mandatory)] [string] $Path)
    $width = $height = 0
    $pixels = [PSStableDiffusionTests.Png]::ReadRgb((Resolve-Path -LiteralPath $Path).Path, [ref] $width, [ref] $height)
    [pscustomobject]@{ Width = $width; Height = $height; Pixels = $pixels }
}

# The PNG's text chunks (tEXt, uncompressed iTXt) as keyword = text.
function Get-SDTestPngText {
    param([Parameter(Mandatory)] [string] $Path)
    [PSStableDiffusionTests.Png]::ReadText((Resolve-Path -LiteralPath $Path).Path)
}

# The largest difference between two RGB byte arrays of the same size, in levels (0..255).
function Get-SDPixelDifference {
    param([Parameter(Mandatory)] [byte[]] $Reference, [Parameter(Mandatory)] [byte[]] $Difference)
    [PSStableDiffusionTests.Png]::MaxAbsDifference($Reference, $Difference)
}

# New-SDImage with these parameters, run once per test run: later calls with the same parameters (in any test file)
# get the same SDImage objects back. Each generation takes seconds, so tests that only read images share them.
# Do not change the returned objects.
function New-SDTestImage {
    param([Parameter(Mandatory)] [hashtable] $Parameters)
    $key = ($Parameters.Keys | Sort-Object | ForEach-Object { "$_=$($Parameters[$_])" }) -join ';'
    $images = $null
    if (-not [PSStableDiffusionTests.GeneratedImages]::ByCall.TryGetValue($key, [ref] $images)) {
        $images = [object[]] @(New-SDImage @Parameters -ErrorAction Stop)
        [PSStableDiffusionTests.GeneratedImages]::ByCall[$key] = $images
    }
    $images
}

# Runs a command that should fail and returns its first ErrorRecord: the terminating error that stopped it, or else
# the first non-terminating one it wrote; $null when it wrote none.
function Get-SDCommandError {
    param([Parameter(Mandatory)] [scriptblock] $Command)
    try {
        @(& $Command 2>&1) | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | Select-Object -First 1
    }
    catch { $_ }
}

# A copy of a golden case's input file (input_image.png, input_mask.png, input_depth.png...) in $Destination.
function Copy-SDGoldenInput {
    param([Parameter(Mandatory)] [string] $Case, [Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [string] $Destination)
    $source = Join-Path (Get-SDGoldenCasePath -Case $Case) $Name
    if (-not (Test-Path -LiteralPath $source)) { throw "Golden case '$Case' has no input file '$Name'." }
    $folder = Split-Path $Destination
    if ($folder) { New-Item -ItemType Directory -Path $folder -Force | Out-Null }
    Copy-Item -LiteralPath $source -Destination $Destination -Force
    (Resolve-Path -LiteralPath $Destination).Path
}

# A file that has an image's name but not its content, for the "not an image" errors.
function New-SDNotAnImageFile {
    param([Parameter(Mandatory)] [string] $Path)
    Set-Content -LiteralPath $Path -Value 'this is not an image' -Encoding utf8
    (Resolve-Path -LiteralPath $Path).Path
}

# Starts a throw-away sshd on 127.0.0.1 for remoting tests: its own host key, a user key for the current user, and a
# "powershell" subsystem that runs the pwsh running these tests (for a dotnet-tool pwsh: dotnet pwsh.dll) with the
# environment the tests use. Returns the process, the folder, and Connection: the parameters to splat on
# Invoke-Command/New-PSSession next to -HostName. Throws when sshd is missing (install openssh-server).
function Start-SDTestSshServer {
    param([Parameter(Mandatory)] [string] $Folder)
    $sshd = @(Get-Command sshd -CommandType Application -ErrorAction Ignore)[0].Source
    if (-not $sshd -and (Test-Path /usr/sbin/sshd)) { $sshd = '/usr/sbin/sshd' }
    if (-not $sshd) { throw 'sshd is not installed: install openssh-server (Debian: apt-get install openssh-server; .ci/run does this).' }
    New-Item -ItemType Directory -Path $Folder -Force | Out-Null
    $Folder = (Resolve-Path -LiteralPath $Folder).Path
    foreach ($key in 'host_key', 'user_key') {
        & ssh-keygen -q -t ed25519 -N '' -C "psstablediffusion-tests-$key" -f (Join-Path $Folder $key) | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "ssh-keygen failed to make $key." }
    }
    Copy-Item -LiteralPath (Join-Path $Folder 'user_key.pub') -Destination (Join-Path $Folder 'authorized_keys')
    # sshd refuses keys that others can read or write.
    if (-not $IsWindows) { & chmod 600 (Join-Path $Folder 'host_key') (Join-Path $Folder 'user_key') (Join-Path $Folder 'authorized_keys') }

    $subsystem = Join-Path $Folder 'pwsh-subsystem.sh'
    $executable = [Environment]::ProcessPath
    $command = if ([IO.Path]::GetFileNameWithoutExtension($executable) -eq 'dotnet') {
        "'$executable' '$(Join-Path $PSHOME 'pwsh.dll')'"
    }
    else { "'$executable'" }
    # sshd gives the subsystem a bare environment: pass on what the module and the tests need.
    $exports = foreach ($name in 'PATH', 'DOTNET_ROOT', 'NUGET_PACKAGES', 'PSSTABLEDIFFUSION_CACHE', 'SD_MODULE_PATH', 'HOME') {
        $value = [Environment]::GetEnvironmentVariable($name)
        if ($value) { "export $name='$($value -replace "'", "'\''")'" }
    }
    Set-Content -LiteralPath $subsystem -Value (@('#!/bin/sh') + $exports + "exec $command -sshs -NoLogo -NoProfile") -Encoding ascii
    & chmod 755 $subsystem

    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
    $listener.Start()
    $port = $listener.LocalEndpoint.Port
    $listener.Stop()
    $config = Join-Path $Folder 'sshd_config'
    Set-Content -LiteralPath $config -Encoding ascii -Value @(
        "Port $port", 'ListenAddress 127.0.0.1', "HostKey $(Join-Path $Folder 'host_key')", "PidFile $(Join-Path $Folder 'sshd.pid')",
        "AuthorizedKeysFile $(Join-Path $Folder 'authorized_keys')", 'PubkeyAuthentication yes', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'PermitRootLogin prohibit-password', 'MaxStartups 20',
        "Subsystem powershell $subsystem")
    # Debian's sshd wants its privilege-separation folder (root only; an unprivileged sshd does not separate).
    if (-not $IsWindows -and (& id -u) -eq '0' -and -not (Test-Path /run/sshd)) { New-Item -ItemType Directory -Path /run/sshd | Out-Null }

    $log = Join-Path $Folder 'sshd.log'
    $process = Start-Process -FilePath $sshd -ArgumentList '-D', '-e', '-f', $config -RedirectStandardError $log -PassThru
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    while ($true) {
        $client = [Net.Sockets.TcpClient]::new()
        try { $client.Connect([Net.IPAddress]::Loopback, $port); break }
        catch {
            if ($process.HasExited -or [DateTime]::UtcNow -gt $deadline) {
                throw "sshd did not start (exit code $(if ($process.HasExited) { $process.ExitCode })): $(Get-Content -Raw -LiteralPath $log -ErrorAction Ignore)"
            }
            Start-Sleep -Milliseconds 200
        }
        finally { $client.Dispose() }
    }
    $user = if ($env:USER) { $env:USER } else { & id -un }
    [pscustomobject]@{
        Process    = $process
        Folder     = $Folder
        Log        = $log
        Connection = @{
            Port = $port; UserName = $user; KeyFilePath = (Join-Path $Folder 'user_key')
            Options = @{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = '/dev/null'; LogLevel = 'ERROR' }
        }
    }
}

function Stop-SDTestSshServer {
    param([Parameter(Mandatory)] $Server)
    if (-not $Server.Process.HasExited) { $Server.Process.Kill($true) }
    $Server.Process.WaitForExit(10000) | Out-Null
}

Export-ModuleMember -Function *-SD*
