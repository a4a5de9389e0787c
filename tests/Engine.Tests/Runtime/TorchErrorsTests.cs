using System.Runtime.InteropServices;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>Out-of-memory failures are told apart from other libtorch errors (cmdlets map them to InsufficientMemory).</summary>
public class TorchErrorsTests
{
    [Theory]
    [InlineData("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.12 GiB is free.")]
    [InlineData("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes. Error code 12 (Cannot allocate memory)")]
    public void LibTorchAllocatorFailuresAreOutOfMemory(string message)
    {
        Assert.True(TorchErrors.IsOutOfMemory(new ExternalException(message)));
        Assert.True(TorchErrors.IsOutOfMemory(new InvalidOperationException("step 3 failed", new ExternalException(message))));
    }

    [Fact]
    public void OtherErrorsAreNot()
    {
        Assert.False(TorchErrors.IsOutOfMemory(new ExternalException("shape '[2, 4]' is invalid for input of size 7")));
        Assert.False(TorchErrors.IsOutOfMemory(new InvalidOperationException("out of memory"))); // not from libtorch
        Assert.True(TorchErrors.IsOutOfMemory(new OutOfMemoryException()));
    }

    [Fact]
    public void TheSummaryLeavesOutLibtorchsStackFrames()
    {
        const string cuda = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.12 GiB is free.";
        var wrapped = new InvalidOperationException("step 3 failed", new ExternalException(
            cuda + "\nException raised from malloc at /pytorch/c10/cuda/CUDACachingAllocator.cpp:1234 (most recent call first):\n" +
            "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x98 (0x7f00 in libc10.so)\n"));
        Assert.Equal(cuda, TorchErrors.Summary(wrapped));
        Assert.Equal("plain", TorchErrors.Summary(new InvalidOperationException("plain")));
    }

    [Fact]
    public void ARealCpuAllocationFailureIsRecognisedAndTheEngineGoesOn()
    {
        // 2^48 floats = 1 PiB, beyond any process's address space (so even an always-overcommitting kernel refuses
        // it): libtorch's CPU allocator fails at once, nothing is touched.
        var error = Record.Exception(() => torch.empty(1L << 46, 1L << 2));
        Assert.NotNull(error);
        Assert.True(TorchErrors.IsOutOfMemory(error), error.GetType().Name + ": " + error.Message);
        // libtorch's message carries its C++ frames; the summary is the first line alone.
        Assert.Contains("\nframe #0: ", error.Message);
        var summary = TorchErrors.Summary(error);
        Assert.StartsWith("[enforce fail at ", summary);
        Assert.Contains("DefaultCPUAllocator: can't allocate memory", summary);
        Assert.DoesNotContain("frame #", summary);
        using var after = torch.ones(4);
        Assert.Equal(4f, after.sum().item<float>());
    }
}
