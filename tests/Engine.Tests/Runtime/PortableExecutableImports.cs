using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// What a Windows DLL needs and offers, read from its PE headers (so it runs on Linux): the DLLs it imports, with the
/// functions it takes from each by name, and the names it exports. Delay-loaded imports are left out: Windows only
/// looks for them when first called, so they cannot stop a load.
/// </summary>
internal sealed class PortableExecutableImports
{
    private PortableExecutableImports(string path, Dictionary<string, List<string>> imports, HashSet<string> exports)
    {
        Path = path;
        Imports = imports;
        Exports = exports;
    }

    public string Path { get; }

    /// <summary>Imported DLL name (as written, e.g. KERNEL32.dll) → function names taken from it by name.</summary>
    public IReadOnlyDictionary<string, List<string>> Imports { get; }

    public IReadOnlySet<string> Exports { get; }

    public static PortableExecutableImports Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        var header = pe.PEHeaders.PEHeader ?? throw new InvalidDataException($"{path} has no PE header.");
        return new PortableExecutableImports(path, ReadImports(pe, header), ReadExports(pe, header));
    }

    private static Dictionary<string, List<string>> ReadImports(PEReader pe, PEHeader header)
    {
        var imports = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        var directory = header.ImportTableDirectory;
        if (directory.Size == 0) return imports;
        var is64 = header.Magic == PEMagic.PE32Plus;
        for (var offset = 0; ; offset += 20) // IMAGE_IMPORT_DESCRIPTOR
        {
            var descriptor = At(pe, directory.RelativeVirtualAddress + offset);
            int lookupTable = descriptor.ReadInt32(), _ = descriptor.ReadInt32() + descriptor.ReadInt32(), nameRva = descriptor.ReadInt32();
            var addressTable = descriptor.ReadInt32();
            if (nameRva == 0) break;
            var functions = new List<string>();
            imports[ReadAsciiZ(pe, nameRva)] = functions;
            var thunks = At(pe, lookupTable != 0 ? lookupTable : addressTable);
            while (true)
            {
                var thunk = is64 ? thunks.ReadInt64() : thunks.ReadInt32();
                if (thunk == 0) break;
                var byOrdinal = is64 ? thunk < 0 : (thunk & 0x80000000L) != 0;
                if (!byOrdinal) functions.Add(ReadAsciiZ(pe, (int)(thunk & 0x7FFFFFFF) + 2)); // after the 2-byte hint
            }
        }
        return imports;
    }

    private static HashSet<string> ReadExports(PEReader pe, PEHeader header)
    {
        var exports = new HashSet<string>(StringComparer.Ordinal);
        var directory = header.ExportTableDirectory;
        if (directory.Size == 0) return exports;
        var table = At(pe, directory.RelativeVirtualAddress + 24); // IMAGE_EXPORT_DIRECTORY.NumberOfNames
        int count = table.ReadInt32(), _ = table.ReadInt32(), names = table.ReadInt32();
        var nameTable = At(pe, names);
        for (var i = 0; i < count; i++) exports.Add(ReadAsciiZ(pe, nameTable.ReadInt32()));
        return exports;
    }

    private static BlobReader At(PEReader pe, int rva) => pe.GetSectionData(rva).GetReader();

    private static string ReadAsciiZ(PEReader pe, int rva)
    {
        var reader = At(pe, rva);
        var text = new StringBuilder();
        for (byte b; (b = reader.ReadByte()) != 0;) text.Append((char)b);
        return text.ToString();
    }
}
