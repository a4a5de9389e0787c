using System.Text.Json.Nodes;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;

namespace PSStableDiffusion.DeviceCheck;

/// <summary>
/// The engine's GPU memory reading (<see cref="CudaDriverMemory"/>, the NVIDIA driver API) as the memory check gets it,
/// for device-check.sh to set beside PyTorch's <c>torch.cuda.mem_get_info()</c> (summarize.py flags a difference over
/// 5 %). Then an allocation probe: a 1 GiB tensor must lower the driver's free figure by at least 1 GiB (the reading
/// sees libtorch's allocations, through the shared primary context), and freeing it must not raise it again (libtorch
/// keeps the block cached: the premise of <see cref="CudaAllocatorCache"/>).
/// </summary>
internal static class GpuMemoryReport
{
    private const long ProbeBytes = 1L << 30;

    /// <summary>Every CUDA device's reading and probe; on a machine without CUDA, the reading of ordinal 0 alone
    /// (unknown, with its reason: the check must not fail there).</summary>
    public static JsonArray Describe(IReadOnlyList<ComputeDevice> devices)
    {
        var readings = new JsonArray();
        var cuda = devices.Where(d => d.IsCuda).ToList();
        if (cuda.Count == 0) readings.Add(Reading("none", CudaDriverMemory.Shared.Read(0)));
        foreach (var device in cuda) readings.Add(Probe(device.Device, device.Index!.Value));
        return readings;
    }

    private static JsonObject Probe(string name, int ordinal)
    {
        var device = torch.device(name);
        using (torch.zeros(1, device: device)) { } // libtorch's context and allocator are up, as in a real call
        var before = CudaDriverMemory.Shared.Read(ordinal);
        var result = Reading(name, before);
        if (!before.IsKnown) return result;
        var probe = torch.empty(ProbeBytes / 4, dtype: torch.float32, device: device);
        torch.cuda.synchronize(device);
        var allocated = CudaDriverMemory.Shared.Read(ordinal);
        probe.Dispose();
        torch.cuda.synchronize(device);
        var freed = CudaDriverMemory.Shared.Read(ordinal);
        long? drop = allocated.FreeBytes is long a ? before.FreeBytes!.Value - a : null;
        long? back = freed.FreeBytes is long f && allocated.FreeBytes is long a2 ? f - a2 : null;
        result["probe"] = new JsonObject
        {
            ["allocated_bytes"] = ProbeBytes,
            ["free_drop_bytes"] = drop,
            ["free_back_after_dispose_bytes"] = back,
            ["reading_sees_allocation"] = drop >= ProbeBytes,
            ["freed_block_stays_cached"] = back is not null && back < ProbeBytes / 2,
        };
        return result;
    }

    private static JsonObject Reading(string device, GpuMemoryReading reading) => new()
    {
        ["device"] = device,
        ["ordinal"] = reading.Ordinal,
        ["name"] = reading.Name,
        ["free_bytes"] = reading.FreeBytes,
        ["total_bytes"] = reading.TotalBytes,
        ["source"] = reading.Source,
        ["problem"] = reading.Problem,
    };
}
