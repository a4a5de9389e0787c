using System.Management.Automation;

namespace PSStableDiffusion;

/// <summary>
/// Lists the compute devices the engine can run on: the CPU and every CUDA device libtorch sees. Calling it also
/// loads the native libtorch libraries, so it is the quickest check that the module is installed correctly.
/// </summary>
[Cmdlet(VerbsCommon.Get, "SDDevice")]
[OutputType(typeof(SDDeviceInfo))]
public sealed class GetSDDeviceCommand : PSCmdlet
{
    #region Members

    private const string CpuType = "cpu";
    private const string CudaType = "cuda";

    #endregion

    #region Parameters

    /// <summary>Only devices of these types; all types when omitted.</summary>
    [Parameter(Position = 0)]
    [ValidateSet(CpuType, CudaType)]
    public string[]? Type { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        bool includeCpu = Wants(CpuType);
        bool includeCuda = Wants(CudaType);

        try
        {
            // A module built with build.ps1 -LibTorch: that folder's libtorch, or an ErrorRecord naming what is wrong.
            Engine.Runtime.LibTorchFolder.EnsureLoaded();
        }
        catch (Engine.Runtime.LibTorchFolderException e)
        {
            ThrowTerminatingError(Infrastructure.SDCmdletBase.LibTorchFolderError(e));
        }

        IReadOnlyList<SDDeviceInfo> devices;
        try
        {
            devices = DeviceProbe.GetDevices(includeCpu, includeCuda);
        }
        catch (Exception exception)
            when (exception is DllNotFoundException or NotSupportedException or TypeInitializationException)
        {
            ThrowTerminatingError(new ErrorRecord(
                new InvalidOperationException(
                    $"The libtorch native libraries could not be loaded from '{ModuleFolder()}' (backend " +
                    $"'{DeviceProbe.BuildBackend()}'): {exception.GetBaseException().Message}",
                    exception),
                "NativeBackendUnavailable",
                ErrorCategory.ResourceUnavailable,
                ModuleFolder()));
            return;
        }

        foreach (var device in devices)
        {
            WriteObject(device);
        }
    }

    #endregion

    #region Private methods

    private bool Wants(string type) =>
        Type is null || Type.Length == 0 || Type.Contains(type, StringComparer.OrdinalIgnoreCase);

    private static string ModuleFolder() =>
        Path.GetDirectoryName(typeof(GetSDDeviceCommand).Assembly.Location) ?? string.Empty;

    #endregion
}
