using System.Text;
using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Checkpoints;

public sealed class TorchCheckpointFileTests : IDisposable
{
    private readonly TempFolder _temp = new("ckpt-tests-");

    public void Dispose() => _temp.Dispose();

    private string TempPath(string name) => Path.Combine(_temp.Path, name);

    /// <summary>
    /// Converts the golden ldm single file into a torch.save-style checkpoint. Most tensors get their own storage;
    /// every third one instead lives in one shared storage at an offset, and 2-D ones there are stored transposed
    /// (stride (1, rows)), so offsets, shared storages and non-contiguous strides are all exercised.
    /// </summary>
    private static string WriteGoldenCheckpoint(string path, SafeTensorsFile source, long globalStep)
    {
        var writer = new TorchSaveWriter { GlobalStep = globalStep, ArchiveName = Path.GetFileNameWithoutExtension(path) };
        var shared = new MemoryStream();
        var sharedViews = new List<(string Name, long Offset, long[] Sizes, long[] Strides)>();
        int i = 0;
        foreach (var name in source.Tensors.Keys.Order(StringComparer.Ordinal))
        {
            using var tensor = source.Read(name);
            if (i++ % 3 != 0)
            {
                writer.AddTensor(name, tensor);
                continue;
            }
            long offset = shared.Length / 4;
            if (tensor.dim() == 2)
            {
                using var transposed = tensor.t().contiguous();
                shared.Write(transposed.bytes);
                sharedViews.Add((name, offset, tensor.shape, new[] { 1L, tensor.shape[0] }));
            }
            else
            {
                shared.Write(tensor.bytes);
                sharedViews.Add((name, offset, tensor.shape, TorchSaveWriter.ContiguousStrides(tensor.shape)));
            }
        }
        var key = writer.AddStorage(ScalarType.Float32, shared.ToArray());
        foreach (var (name, offset, sizes, strides) in sharedViews) writer.AddView(name, key, offset, sizes, strides);
        writer.Save(path);
        return key;
    }

    [Fact]
    public void GoldenSingleFile_EveryTensorLoadsBitwiseIdentical()
    {
        using var source = SafeTensorsFile.Open(Golden.Path("txt2img_v", "single_file.safetensors"));
        var path = TempPath("v2-1_768-tiny.ckpt");
        WriteGoldenCheckpoint(path, source, globalStep: 110000);

        using var checkpoint = TorchCheckpointFile.Open(path);
        ITensorFile file = checkpoint;
        Assert.Equal(110000, checkpoint.GlobalStep);
        Assert.Equal(new[] { "state_dict", "global_step" }, checkpoint.TopLevelKeys);
        Assert.Equal(source.Tensors.Keys.Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        foreach (var name in source.Tensors.Keys)
        {
            Assert.Equal(source.Tensors[name].Shape, file.ShapeOf(name));
            Assert.Equal(ScalarType.Float32, file.DTypeOf(name));
            using var expected = source.Read(name);
            using var actual = file.Read(name);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(actual.is_contiguous(), name);
            Assert.True(expected.bytes.SequenceEqual(actual.bytes), $"{name} differs from the safetensors tensor");
        }
    }

    [Fact]
    public void HalfAndBFloat16Storages_ConvertOnRead()
    {
        using var source = SafeTensorsFile.Open(Golden.Path("txt2img_v", "single_file.safetensors"));
        var name = source.Tensors.Keys.First(k => source.Tensors[k].Shape.Length == 4);
        using var original = source.Read(name);
        using var half = original.to(ScalarType.Float16);
        using var bf16 = original.to(ScalarType.BFloat16);
        var writer = new TorchSaveWriter { WrapInStateDict = false };
        writer.AddTensor("half", half);
        writer.AddTensor("bf16", bf16);
        var path = TempPath("mixed.bin");
        writer.Save(path);

        using var file = TorchCheckpointFile.Open(path);
        Assert.Null(file.GlobalStep);
        Assert.Equal(ScalarType.Float16, file.DTypeOf("half"));
        Assert.Equal(ScalarType.BFloat16, file.DTypeOf("bf16"));
        using var readHalf = file.Read("half");
        using var readBf16 = file.Read("bf16");
        Assert.True(half.bytes.SequenceEqual(readHalf.bytes));
        Assert.True(bf16.bytes.SequenceEqual(readBf16.bytes));
        using var asFloat = file.Read("half", ScalarType.Float32);
        using var expectedFloat = half.to(ScalarType.Float32);
        Assert.Equal(ScalarType.Float32, asFloat.dtype);
        Assert.True(expectedFloat.bytes.SequenceEqual(asFloat.bytes));
    }

    // ---- hostile pickles: each would run a shell command under Python's pickle.load ----

    /// <summary><c>module.name(argument)</c> as GLOBAL (or STACK_GLOBAL) + REDUCE, wrapped in a state-dict-like dict.</summary>
    private static byte[] BuildReduce(string module, string name, string argument, bool stackGlobal)
    {
        var p = new PickleWriter().Proto(stackGlobal ? 4 : 2);
        p.Op('}').Put().Mark().Str("state_dict");
        if (stackGlobal)
        {
            p.Str(module).Str(name).Raw(0x93).Put();
        }
        else p.Global(module, name);
        p.Str(argument).Raw(0x85).Put(); // TUPLE1
        p.Op('R').Put();
        p.Op('u').Stop();
        return p.ToArray();
    }

    [Theory]
    [InlineData("os", "system", false)]
    [InlineData("builtins", "eval", true)]
    [InlineData("posix", "system", false)]
    [InlineData("subprocess", "Popen", true)]
    [InlineData("__builtin__", "getattr", false)]
    public void HostileGlobal_IsRefusedByName_AndNothingRuns(string module, string name, bool stackGlobal)
    {
        var marker = TempPath("pwned-" + name);
        var argument = name == "eval" ? $"__import__('os').system('touch {marker}')" : $"touch {marker}";
        var path = TempPath("evil.ckpt");
        TorchSaveWriter.SaveRawPickle(path, BuildReduce(module, name, argument, stackGlobal));

        var error = Assert.Throws<UnsafeCheckpointException>(() => TorchCheckpointFile.Open(path));
        Assert.Equal($"{module}.{name}", error.RefusedGlobal);
        Assert.Contains($"'{module}.{name}'", error.Message);
        Assert.Contains(stackGlobal ? "STACK_GLOBAL" : "GLOBAL", error.Message);
        Assert.False(File.Exists(marker), "the hostile command ran");
    }

    [Fact]
    public void HostileGlobal_AfterRealTensors_IsStillRefused()
    {
        var writer = new TorchSaveWriter();
        using var t = ScalarSafeTensor.Arange(6, ScalarType.Float32, CPU);
        writer.AddTensor("weight", t);
        var clean = writer.BuildPickle();
        // Splice "os.system('touch marker')" in as another state-dict value, just before the closing SETITEMS.
        var marker = TempPath("pwned-late");
        var evil = new PickleWriter().Str("evil").Global("os", "system").Str($"touch {marker}").Raw(0x85).Op('R').ToArray();
        int setItems = Array.LastIndexOf(clean, (byte)'u', clean.Length - 2);
        var pickle = clean[..setItems].Concat(evil).Concat(clean[setItems..]).ToArray();
        var path = TempPath("late-evil.ckpt");
        TorchSaveWriter.SaveRawPickle(path, pickle);

        var error = Assert.Throws<UnsafeCheckpointException>(() => TorchCheckpointFile.Open(path));
        Assert.Equal("os.system", error.RefusedGlobal);
        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData((byte)'i', "INST")]
    [InlineData((byte)'o', "OBJ")]
    [InlineData((byte)0x82, "EXT1")]
    [InlineData((byte)0xfe, "unknown opcode 0xfe")]
    public void UnknownOrObjectBuildingOpcode_IsRefusedByName(byte opcode, string expectedName)
    {
        var pickle = new PickleWriter().Proto(2).Op('}').Raw(opcode, (byte)'o', (byte)'s', (byte)'\n', (byte)'x', (byte)'\n').Stop().ToArray();
        var error = Assert.Throws<UnsafeCheckpointException>(() => RestrictedUnpickler.Load(pickle, _ => null));
        Assert.Equal(expectedName, error.RefusedOpcode);
        Assert.Contains(expectedName, error.Message);
    }

    [Fact]
    public void LegacyPickleFormat_WithOnlyItsMagicNumber_IsATruncatedFile()
    {
        var path = TempPath("legacy.ckpt");
        // Legacy torch.save starts with a pickled magic number: PROTO 2, LONG1 ... (the rest: RealWorldCheckpointTests)
        File.WriteAllBytes(path, new byte[] { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e });
        var error = Assert.Throws<CheckpointFormatException>(() => TorchCheckpointFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("ends early", error.Message);
    }

    // ---- damaged files ----

    private string WriteSmallCheckpoint(string name, Action<TorchSaveWriter>? configure = null)
    {
        var writer = new TorchSaveWriter { GlobalStep = 7 };
        using var a = ScalarSafeTensor.Arange(24, ScalarType.Float32, CPU).reshape(2, 3, 4);
        using var b = ScalarSafeTensor.Arange(10, ScalarType.Int64, CPU);
        writer.AddTensor("a", a);
        writer.AddTensor("b", b);
        configure?.Invoke(writer);
        var path = TempPath(name);
        writer.Save(path);
        return path;
    }

    [Fact]
    public void SmallCheckpoint_RoundTrips()
    {
        using var file = TorchCheckpointFile.Open(WriteSmallCheckpoint("small.ckpt"));
        Assert.Equal(7, file.GlobalStep);
        using var a = file.Read("a");
        using var b = file.Read("b");
        using var expectedA = ScalarSafeTensor.Arange(24, ScalarType.Float32, CPU).reshape(2, 3, 4);
        Assert.True(expectedA.bytes.SequenceEqual(a.bytes));
        Assert.Equal(ScalarType.Int64, b.dtype);
        Assert.Equal(45L, b.sum().item<long>());
        Assert.Throws<KeyNotFoundException>(() => file.Read("missing"));
    }

    [Fact]
    public void TruncatedZip_GivesClearError()
    {
        var bytes = File.ReadAllBytes(WriteSmallCheckpoint("whole.ckpt"));
        foreach (var keep in new[] { 0, 3, 10, 100, bytes.Length / 2, bytes.Length - 30, bytes.Length - 1 })
        {
            var path = TempPath($"cut-{keep}.ckpt");
            File.WriteAllBytes(path, bytes[..keep]);
            var error = Assert.ThrowsAny<CheckpointFormatException>(() => TorchCheckpointFile.Open(path).Dispose());
            Assert.Contains(path, error.Message);
        }
    }

    [Fact]
    public void TruncatedPickle_GivesClearError()
    {
        for (int cut = 1; cut < 40; cut += 7)
        {
            int keep = cut;
            var path = WriteSmallCheckpoint($"short-pickle-{cut}.ckpt", w => w.MutatePickle = p => p[..(p.Length - keep)]);
            var error = Assert.ThrowsAny<CheckpointFormatException>(() => TorchCheckpointFile.Open(path).Dispose());
            Assert.Contains("ends early", error.Message);
        }
    }

    [Fact]
    public void StorageShorterThanDeclared_GivesClearError()
    {
        var path = WriteSmallCheckpoint("short-storage.ckpt", w => w.MutateStorage = (key, b) => key == "0" ? b[..40] : b);
        var error = Assert.Throws<CheckpointFormatException>(() => TorchCheckpointFile.Open(path));
        Assert.Contains("storage '0'", error.Message);
        Assert.Contains("declares 96 bytes but its entry holds 40", error.Message);
    }

    [Fact]
    public void ViewBeyondItsStorage_GivesClearError()
    {
        var path = WriteSmallCheckpoint("overreach.ckpt", w => w.AddView("c", "0", 20, new[] { 2L, 3L }, new[] { 3L, 1L }));
        var error = Assert.Throws<CheckpointFormatException>(() => TorchCheckpointFile.Open(path));
        Assert.Contains("tensor 'c'", error.Message);
        Assert.Contains("reaches element 25", error.Message);
    }

    [Fact]
    public void HugeDeclaredSizes_GiveClearErrors_WithoutAllocating()
    {
        var huge = WriteSmallCheckpoint("huge-shape.ckpt",
            w => w.AddView("c", "0", 0, new[] { 1L << 40, 1L << 40, 1L << 40 }, new[] { 1L << 40, 1L << 20, 1L }));
        var error = Assert.Throws<CheckpointFormatException>(() => TorchCheckpointFile.Open(huge));
        Assert.Contains("tensor 'c'", error.Message);

        var hugeStorage = WriteSmallCheckpoint("huge-storage.ckpt", w => w.DeclaredElementCounts["1"] = long.MaxValue / 2);
        error = Assert.Throws<CheckpointFormatException>(() => TorchCheckpointFile.Open(hugeStorage));
        Assert.Contains("storage", error.Message);

        // A string claiming 4 GB in a tiny pickle.
        var pickle = new PickleWriter().Proto(2).Raw((byte)'X', 0xff, 0xff, 0xff, 0xff, (byte)'a').Stop().ToArray();
        error = Assert.ThrowsAny<CheckpointFormatException>(() => RestrictedUnpickler.Load(pickle, _ => null));
        Assert.Contains("declares 4294967295 bytes", error.Message);
    }

    [Fact]
    public void MutatedPickles_NeverCrashOrHang()
    {
        var writer = new TorchSaveWriter { GlobalStep = 3 };
        using var a = torch.ones(2, 2);
        writer.AddTensor("a", a);
        writer.AddTensor("b", a);
        var clean = writer.BuildPickle();
        var random = new Random(1234);
        int refused = 0, parsed = 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 3000; round++)
        {
            var bytes = (byte[])clean.Clone();
            int flips = 1 + random.Next(4);
            for (int f = 0; f < flips; f++) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            if (random.Next(4) == 0) bytes = bytes[..random.Next(bytes.Length)];
            try
            {
                RestrictedUnpickler.Load(bytes, pid => new TorchStorageRef("0", ScalarType.Float32, "cpu", 4));
                parsed++;
            }
            catch (CheckpointFormatException)
            {
                refused++;
            }
        }
        Assert.True(refused > 0 && parsed + refused == 3000);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"fuzzing took {watch.Elapsed}");
    }

    /// <summary>Pickles written by CPython's pickle (protocols 2-5) of
    /// <c>OrderedDict([('a', 1), ('b', [1.5, None, True, False, (1, 2, 3, 4)]), ('c', {'x': b'by', 'y': (7,)}),
    /// ('big', 2**70), ('neg', -5), ('m', 70000), ('i', -2**31), ('s', 'üüü'), ('set', {3})])</c>.</summary>
    [Theory]
    [InlineData(2, "gAJjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgBAAAAYXECSwFYAQAAAGJxA11xBChHP/gAAAAAAABOiIkoSwFLAksDSwR0cQVlWAEAAABjcQZ9cQcoWAEAAAB4cQhjX2NvZGVjcwplbmNvZGUKcQlYAgAAAGJ5cQpYBgAAAGxhdGluMXELhnEMUnENWAEAAAB5cQ5LB4VxD3VYAwAAAGJpZ3EQigkAAAAAAAAAAEBYAwAAAG5lZ3ERSvv///9YAQAAAG1xEkpwEQEAWAEAAABpcRNKAAAAgFgBAAAAc3EUWAYAAADDvMO8w7xxFVgDAAAAc2V0cRZjX19idWlsdGluX18Kc2V0CnEXXXEYSwNhhXEZUnEadS4=")]
    [InlineData(3, "gANjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgBAAAAYXECSwFYAQAAAGJxA11xBChHP/gAAAAAAABOiIkoSwFLAksDSwR0cQVlWAEAAABjcQZ9cQcoWAEAAAB4cQhDAmJ5cQlYAQAAAHlxCksHhXELdVgDAAAAYmlncQyKCQAAAAAAAAAAQFgDAAAAbmVncQ1K+////1gBAAAAbXEOSnARAQBYAQAAAGlxD0oAAACAWAEAAABzcRBYBgAAAMO8w7zDvHERWAMAAABzZXRxEmNidWlsdGlucwpzZXQKcRNdcRRLA2GFcRVScRZ1Lg==")]
    [InlineData(4, "gASVqQAAAAAAAACMC2NvbGxlY3Rpb25zlIwLT3JkZXJlZERpY3SUk5QpUpQojAFhlEsBjAFilF2UKEc/+AAAAAAAAE6IiShLAUsCSwNLBHSUZYwBY5R9lCiMAXiUQwJieZSMAXmUSweFlHWMA2JpZ5SKCQAAAAAAAAAAQIwDbmVnlEr7////jAFtlEpwEQEAjAFplEoAAACAjAFzlIwGw7zDvMO8lIwDc2V0lI+UKEsDkHUu")]
    [InlineData(5, "gAWVqQAAAAAAAACMC2NvbGxlY3Rpb25zlIwLT3JkZXJlZERpY3SUk5QpUpQojAFhlEsBjAFilF2UKEc/+AAAAAAAAE6IiShLAUsCSwNLBHSUZYwBY5R9lCiMAXiUQwJieZSMAXmUSweFlHWMA2JpZ5SKCQAAAAAAAAAAQIwDbmVnlEr7////jAFtlEpwEQEAjAFplEoAAACAjAFzlIwGw7zDvMO8lIwDc2V0lI+UKEsDkHUu")]
    public void CPythonPickles_OfPlainData_AreInterpreted(int protocol, string base64)
    {
        var root = Assert.IsType<PickleDict>(RestrictedUnpickler.Load(Convert.FromBase64String(base64), _ => null));
        object? Get(string key) => root.TryGet(key, out var v) ? v : throw new KeyNotFoundException(key);
        Assert.Equal(new[] { "a", "b", "c", "big", "neg", "m", "i", "s", "set" }, root.Items.Select(kv => (string)kv.Key));
        Assert.Equal(1L, Get("a"));
        var b = Assert.IsType<PickleList>(Get("b"));
        Assert.Equal(1.5, b[0]);
        Assert.Null(b[1]);
        Assert.Equal(true, b[2]);
        Assert.Equal(false, b[3]);
        Assert.Equal(new object?[] { 1L, 2L, 3L, 4L }, Assert.IsType<PickleTuple>(b[4]).Items);
        var c = Assert.IsType<PickleDict>(Get("c"));
        Assert.True(c.TryGet("x", out var bytes));
        Assert.Equal("by"u8.ToArray(), bytes);
        Assert.True(c.TryGet("y", out var single));
        Assert.Equal(new object?[] { 7L }, Assert.IsType<PickleTuple>(single).Items);
        Assert.Equal(System.Numerics.BigInteger.Pow(2, 70), Get("big"));
        Assert.Equal(-5L, Get("neg"));
        Assert.Equal(70000L, Get("m"));
        Assert.Equal((long)int.MinValue, Get("i"));
        Assert.Equal("üüü", Get("s"));
        Assert.Equal(new object?[] { 3L }, Assert.IsType<PickleList>(Get("set")).ToArray());
        Assert.InRange(protocol, 2, 5);
    }

    [Fact]
    public void NotAZip_GivesClearError()
    {
        var path = TempPath("text.ckpt");
        File.WriteAllText(path, "hello");
        var error = Assert.Throws<CheckpointFormatException>(() => TorchCheckpointFile.Open(path));
        Assert.Contains("not a PyTorch checkpoint", error.Message);
    }
}
