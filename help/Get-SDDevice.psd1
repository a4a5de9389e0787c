@{
    Synopsis    = 'Lists the compute devices that Stable Diffusion can run on: the CPU and each CUDA GPU.'

    Description = @(
        @'
Get-SDDevice writes one object for the CPU and one for each CUDA device that libtorch can use. The CPU object tells
how many logical processors this process may use, how many threads libtorch runs an operation on, and whether the
processor has the AVX512_BF16 instructions (bfloat16 matrix products then run about twice as fast as float32 ones;
null when this cannot be told). Every object also carries the TorchSharp and libtorch versions and the backend the
module was built with (cpu, or cuda when built with ./build.ps1 -Backend cuda).
'@
        @'
Because it loads the native libtorch libraries, Get-SDDevice is also the quickest way to check that the module is
installed correctly. It fails with the error NativeBackendUnavailable when the native libraries cannot be loaded.
'@
        @'
A module built against an installed libtorch (./build.ps1 -Backend cuda -LibTorch <folder>) loads libtorch from that
folder; LibTorchFolder then names the folder and LibTorchVersion is the version the folder states. When the folder is
missing, or a cuda build's folder holds no libtorch_cuda, Get-SDDevice fails with LibTorchNotFound or
LibTorchCudaNotFound, naming the folder and the missing file.
'@
        @'
CUDA devices are listed only by the cuda build of the module, and only by their index (cuda:0, cuda:1, ...), because
TorchSharp does not report device names. Pass the Device value to the -Device parameter of New-SDImage.
'@
    )

    Parameters  = @{
        Type = 'Lists only devices of these types: cpu, cuda, or both. When omitted, all devices are listed.'
    }

    Inputs      = @(
        @{ Type = 'None'; Description = 'Get-SDDevice takes no pipeline input.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.SDDeviceInfo'
            Description = 'Device (cpu or cuda:N), Type, Index, Name, LogicalCores, Threads, HasAvx512Bf16, TorchSharpVersion, LibTorchVersion, LibTorchFolder (null unless built with -LibTorch) and Backend.'
        }
    )

    Notes       = 'On Linux the processor name and the AVX512_BF16 flag come from /proc/cpuinfo; elsewhere on x86 from the CPUID instruction.'

    Examples    = @(
        @{
            Title   = 'List every device'
            Code    = 'Get-SDDevice'
            Remarks = 'Lists the CPU and, with the cuda build, each CUDA GPU, with the libtorch version and the build''s backend.'
        }
        @{
            Title   = 'Check whether bfloat16 is worth using'
            Code    = '(Get-SDDevice -Type cpu).HasAvx512Bf16'
            Remarks = 'Returns True when the processor has the AVX512_BF16 instructions, False when it has not, and nothing (null) when this cannot be told.'
        }
        @{
            Title   = 'Pick a GPU when there is one'
            Code    = '$device = (Get-SDDevice -Type cuda | Select-Object -First 1).Device ?? ''cpu'''
            Remarks = 'Stores cuda:0 when a CUDA device is available, else cpu, to pass to New-SDImage -Device.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Get-SDEngine'
        'about_PSStableDiffusion'
    )
}
