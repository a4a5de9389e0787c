using System.Text;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.IO;

public sealed class SafeTensorsFileTests : IDisposable
{
    private readonly TempFolder _temp = new("st-tests-");

    public void Dispose() => _temp.Dispose();

    private string PathOf(string name) => System.IO.Path.Combine(_temp.Path, name);

    /// <summary>Writes a file byte by byte: 8-byte length, header text, data (for malformed cases).</summary>
    private string RawFile(string header, int dataBytes = 0, ulong? declaredLength = null, string name = "raw.safetensors")
    {
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + headerBytes.Length + dataBytes];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), declaredLength ?? (ulong)headerBytes.Length);
        headerBytes.CopyTo(bytes, 8);
        var path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static SafeTensorsFormatException AssertRefused(string path, params string[] mentions)
    {
        var error = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, error.Message);
        foreach (var text in mentions) Assert.Contains(text, error.Message);
        return error;
    }

    [Fact]
    public void RoundTripKeepsEveryDtypeShapeAndValue()
    {
        var generator = new torch.Generator(7);
        var tensors = new List<(string, Tensor)>
        {
            ("f32", torch.randn(new long[] { 3, 5 }, generator: generator)),
            ("f16", torch.randn(new long[] { 4, 2, 3 }, generator: generator).to(ScalarType.Float16)),
            ("bf16", torch.randn(new long[] { 7 }, generator: generator).to(ScalarType.BFloat16)),
            ("f64", torch.randn(new long[] { 2, 2 }, ScalarType.Float64, generator: generator)),
            ("i64", ScalarSafeTensor.Arange(0, 10, ScalarType.Int64, CPU)),
            ("u8", ScalarSafeTensor.Arange(0, 200, ScalarType.Byte, CPU)),
            ("bool", torch.tensor(new[] { true, false, true })),
            ("scalar", torch.tensor(3.5f)),
            ("empty", torch.zeros(new long[] { 0, 3 })),
            ("transposed", torch.randn(new long[] { 3, 4 }, generator: generator).t()),
        };
        var path = PathOf("round.safetensors");
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode" });

        var bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, (8 + headerLength) % 8);
        Assert.Equal((byte)'{', bytes[8]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("ünïcode", file.Metadata["note"]);
        Assert.Equal(tensors.Count, file.Tensors.Count);
        foreach (var (name, expected) in tensors)
        {
            var info = file.Tensors[name];
            Assert.Equal(SafeTensorsFile.FromScalarType(expected.dtype), info.DType);
            Assert.Equal(expected.shape, info.Shape);
            using var actual = file.Read(name);
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(Same(expected, actual), $"tensor {name} changed in the round trip");
        }
    }

    [Fact]
    public void ReadConvertsToTheRequestedDtypeAndOwnsItsStorage()
    {
        var source = torch.randn(new long[] { 8, 16 }, generator: new torch.Generator(1)).to(ScalarType.Float16);
        var path = PathOf("half.safetensors");
        SafeTensorsWriter.Write(path, new[] { ("w", source) }, null);

        Tensor asFloat, asBFloat, same;
        using (var file = SafeTensorsFile.Open(path))
        {
            asFloat = file.Read("w", ScalarType.Float32);
            asBFloat = file.Read("w", ScalarType.BFloat16);
            same = file.Read("w");
        }
        // The file is closed: the tensors must still hold the data.
        Assert.Equal(ScalarType.Float32, asFloat.dtype);
        Assert.True(Same(source.to(ScalarType.Float32), asFloat));
        Assert.True(Same(source.to(ScalarType.BFloat16), asBFloat));
        Assert.True(Same(source, same));
    }

    [Fact]
    public void ReadIntoConvertsIntoAnExistingTensor()
    {
        var source = torch.randn(new long[] { 5, 6 }, generator: new torch.Generator(2)).to(ScalarType.BFloat16);
        var path = PathOf("into.safetensors");
        SafeTensorsWriter.Write(path, new[] { ("w", source) }, null);
        using var file = SafeTensorsFile.Open(path);
        var destination = torch.zeros(5, 6);
        file.ReadInto("w", destination);
        Assert.True(Same(source.to(ScalarType.Float32), destination));

        var wrongShape = torch.zeros(6, 5);
        var error = Assert.Throws<ArgumentException>(() => file.ReadInto("w", wrongShape));
        Assert.Contains("'w'", error.Message);
        Assert.Contains("[5, 6]", error.Message);
        Assert.Contains("[6, 5]", error.Message);
    }

    [Fact]
    public void ReadAllocatesNoManagedCopyOfTheTensor()
    {
        const long elements = 4 * 1024 * 1024; // 16 MB as float32
        var path = PathOf("big.safetensors");
        SafeTensorsWriter.Write(path, new[] { ("big", torch.rand(elements)), ("small", torch.rand(4)) }, null);
        using var file = SafeTensorsFile.Open(path);
        file.Read("small").Dispose(); // JIT and first-use costs out of the way
        file.Read("small", ScalarType.Float16).Dispose();

        long before = GC.GetAllocatedBytesForCurrentThread();
        using var same = file.Read("big");
        using var converted = file.Read("big", ScalarType.BFloat16);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(allocated < 64 * 1024, $"Read allocated {allocated} managed bytes for a {elements * 4}-byte tensor");
        Assert.Equal(elements, same.NumberOfElements);
    }

    [Fact]
    public void ReadsTheGoldenFixtures()
    {
        using var file = SafeTensorsFile.Open(Golden.Path("text_encoder", "io.safetensors"));
        Assert.Equal("pt", file.Metadata["format"]);
        using var ids = file.Read("input_ids");
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Equal(77L, ids.shape[1]);
        Assert.Equal(49406L, ids[0, 0].item<long>());
    }

    [Fact]
    public void UnknownTensorNameNamesTheFile()
    {
        var path = PathOf("one.safetensors");
        SafeTensorsWriter.Write(path, new[] { ("a", torch.ones(2)) }, null);
        using var file = SafeTensorsFile.Open(path);
        var error = Assert.Throws<KeyNotFoundException>(() => file.Read("b"));
        Assert.Contains("'b'", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void WriterReplacesAtomicallyAndLeavesNoTemporaryFiles()
    {
        var path = PathOf("model.safetensors");
        File.WriteAllText(path, "old content");
        SafeTensorsWriter.Write(path, new[] { ("x", torch.ones(3)) }, null);
        using (var file = SafeTensorsFile.Open(path)) Assert.True(Same(torch.ones(3), file.Read("x")));
        Assert.Equal(new[] { path }, Directory.GetFiles(_temp.Path));

        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, new[] { ("x", torch.ones(1)), ("x", torch.ones(1)) }, null));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, new[] { ("__metadata__", torch.ones(1)) }, null));
        Assert.Equal(new[] { path }, Directory.GetFiles(_temp.Path));
    }

    [Fact]
    public void TooShortFilesAreRefused()
    {
        var empty = PathOf("empty.safetensors");
        File.WriteAllBytes(empty, []);
        AssertRefused(empty, "0 bytes");
        var five = PathOf("five.safetensors");
        File.WriteAllBytes(five, [1, 2, 3, 4, 5]);
        AssertRefused(five, "5 bytes");
    }

    [Fact]
    public void LyingHeaderLengthsAreRefused()
    {
        AssertRefused(RawFile("{}", declaredLength: ulong.MaxValue), "18446744073709551615", "limit");
        AssertRefused(RawFile("{}", declaredLength: 1000), "1000", "past the end");
        AssertRefused(RawFile("{\"__metadata__\":{}}", declaredLength: 5), "not valid JSON");
    }

    [Fact]
    public void NonJsonAndNonObjectHeadersAreRefused()
    {
        AssertRefused(RawFile("not json at all"), "not valid JSON");
        AssertRefused(RawFile("[1, 2]"), "Array");
        AssertRefused(RawFile("{} trailing"), "after its JSON");
        AssertRefused(RawFile("{\"a\": 5}"), "'a'", "Number");
    }

    [Fact]
    public void BadTensorEntriesNameTheTensorAndValue()
    {
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), "'w'", "F8_E4M3");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "'w'", "f32");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "'w'", "-1");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4), "'w'", "1.5");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4), "'w'", "[4, 0]");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4), "'w'", "-4");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4), "'w'", "[0]");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8), "'w'", "8 bytes", "hold 4");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "'w'", "shape");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", 4), "'w'", "overflows");
    }

    [Fact]
    public void OffsetsPastTheEndAndOverlapsAreRefused()
    {
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12), "'w'", "[0, 16]", "12-byte");
        AssertRefused(RawFile(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
            "'b'", "overlap", "'a'");
    }

    [Fact]
    public void TruncatedFilesAreRefused()
    {
        var path = PathOf("whole.safetensors");
        SafeTensorsWriter.Write(path, new[] { ("a", torch.ones(16)), ("b", torch.ones(16)) }, null);
        var bytes = File.ReadAllBytes(path);
        var truncated = PathOf("truncated.safetensors");
        File.WriteAllBytes(truncated, bytes[..^10]);
        AssertRefused(truncated, "'b'", "past the");
        File.WriteAllBytes(truncated, bytes[..20]);
        AssertRefused(truncated, "past the end");
    }

    [Fact]
    public void DuplicateKeysAndBadMetadataAreRefused()
    {
        const string entry = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
        AssertRefused(RawFile($"{{\"w\":{entry},\"w\":{entry}}}", 1), "'w'", "duplicate");
        AssertRefused(RawFile("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}"), "duplicate", "'a'");
        AssertRefused(RawFile("{\"__metadata__\":{\"a\":1}}"), "'a'", "not a string");
        AssertRefused(RawFile("{\"__metadata__\":[]}"), "__metadata__");
        AssertRefused(RawFile("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), "'w'", "duplicate field 'dtype'");
    }

    [Fact]
    public void ZeroSizedTensorsMaySitAnywhere()
    {
        var path = RawFile("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new long[] { 0, 3 }, file.Read("e").shape);
    }

    [Fact]
    public void MisalignedDataIsStillReadCorrectly()
    {
        // One byte of U8 first puts the float32 tensor on an odd address.
        var header = "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var bytes = new List<byte>(BitConverter.GetBytes((ulong)headerBytes.Length));
        bytes.AddRange(headerBytes);
        bytes.Add(7);
        bytes.AddRange(BitConverter.GetBytes(1.5f));
        bytes.AddRange(BitConverter.GetBytes(-2.25f));
        var path = PathOf("misaligned.safetensors");
        File.WriteAllBytes(path, bytes.ToArray());
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new[] { 1.5f, -2.25f }, file.Read("w").data<float>().ToArray());
        Tensor doubled = file.Read("w", ScalarType.Float64).ScalarSafe() * 2;
        Assert.Equal(new[] { 3.0, -4.5 }, doubled.data<double>().ToArray());
    }
}
