using PSStableDiffusion.Engine.Schedulers;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

public class SchedulerOptionTests
{
    [Theory]
    [InlineData("DDIM", 0.5, null)]
    [InlineData("DPM++ 2M", null, true)]
    [InlineData("EulerDiscrete", null, false)]
    public void OptionsThatApplyAreAccepted(string name, double? eta, bool? karras) =>
        SchedulerRegistry.ValidateOptions(name, eta, karras);

    [Theory]
    [InlineData("Euler a", 0.5, null, "Eta")]
    [InlineData("DDIM", null, true, "KarrasSigmas")]
    [InlineData("PNDM", null, true, "KarrasSigmas")]
    public void OptionsASchedulerWouldIgnoreAreRefusedByName(string name, double? eta, bool? karras, string option)
    {
        var error = Assert.Throws<ArgumentException>(() => SchedulerRegistry.ValidateOptions(name, eta, karras));
        // The engine names the request property first; the cmdlets turn it into the parameter's PowerShell name.
        Assert.Equal(option, error.ParamName);
        Assert.StartsWith(option + " does not apply", error.Message);
        Assert.Contains(name, error.Message);
    }
}
