using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Unet;

public class UNetInputValidationTests
{
    [Fact]
    public void WrongInputChannelsAreRejectedWithTheExpectedShape()
    {
        using var golden = Golden.Case("inpaint");
        var config = UNet2DConditionConfig.FromFile(Path.Combine(golden.ModelFolder, "unet", "config.json"));
        using var unet = new UNet2DConditionModel(config);
        using var scope = torch.NewDisposeScope();
        var context = torch.zeros(2, 77, 8);
        var error = Assert.Throws<ArgumentException>(() => unet.forward(torch.zeros(2, 4, 8, 8), torch.tensor(10L), context));
        Assert.Contains("[B, 9, h, w]", error.Message);
        error = Assert.Throws<ArgumentException>(() => unet.forward(torch.zeros(2, 9, 8, 8), torch.tensor(10L), torch.zeros(2, 77, 16)));
        Assert.Contains("encoderHiddenStates", error.Message);
    }
}
