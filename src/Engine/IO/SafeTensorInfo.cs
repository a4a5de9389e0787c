using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>One tensor entry of a safetensors header; offsets are relative to the data section.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}
