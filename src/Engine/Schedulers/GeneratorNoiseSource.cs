using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Noise from a CPU <see cref="torch.Generator"/>: <c>torch.randn(shape, generator: g)</c>, which is bit-identical to
/// PyTorch's CPU generator, so a diffusers run given <c>torch.Generator().manual_seed(seed)</c> draws the same numbers
/// in the same order (diffusers' <c>randn_tensor</c> draws on the generator's device, then moves the tensor).
/// </summary>
public sealed class GeneratorNoiseSource : INoiseSource, IDisposable
{
    private readonly bool _ownsGenerator;

    /// <summary>A new CPU generator seeded with <paramref name="seed"/>.</summary>
    public GeneratorNoiseSource(long seed) : this(new torch.Generator((ulong)seed, torch.CPU), ownsGenerator: true) { }

    /// <summary>Draws from an existing generator (shared with other draws, e.g. the initial latents).</summary>
    public GeneratorNoiseSource(torch.Generator generator) : this(generator, ownsGenerator: false) { }

    private GeneratorNoiseSource(torch.Generator generator, bool ownsGenerator)
    {
        Generator = generator;
        _ownsGenerator = ownsGenerator;
    }

    public torch.Generator Generator { get; }

    public Tensor Randn(long[] shape, ScalarType dtype) =>
        torch.randn(shape, dtype: dtype, device: torch.CPU, generator: Generator);

    public void Dispose()
    {
        if (_ownsGenerator) Generator.Dispose();
    }
}
