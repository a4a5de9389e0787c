using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>Element types a safetensors header may name.</summary>
public enum SafeTensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL }
