namespace PSStableDiffusion.Engine.Runtime;

/// <summary>Reads a GPU's free and total memory (<see cref="CudaDriverMemory"/>; tests pass fakes). A reading that
/// fails is <see cref="GpuMemoryReading.Unknown"/>, never an exception: the memory check then refuses
/// nothing.</summary>
public interface IGpuMemoryProvider
{
    GpuMemoryReading Read(int ordinal);
}
