using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Clip;

/// <summary>Writes float32/int64 tensors as a minimal safetensors file, for loader tests.</summary>
internal static class SafeTensorsTestWriter
{
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var header = new Dictionary<string, object>();
        var data = new MemoryStream();
        foreach (var (name, tensor) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var dtype = tensor.dtype switch
            {
                ScalarType.Float32 => "F32",
                ScalarType.Int64 => "I64",
                _ => throw new NotSupportedException(tensor.dtype.ToString()),
            };
            var bytes = tensor.contiguous().cpu().bytes.ToArray();
            header[name] = new { dtype, shape = tensor.shape, data_offsets = new[] { data.Length, data.Length + bytes.Length } };
            data.Write(bytes);
        }
        var headerBytes = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        using var file = File.Create(path);
        file.Write(BitConverter.GetBytes((long)headerBytes.Length));
        file.Write(headerBytes);
        data.Position = 0;
        data.CopyTo(file);
    }
}
