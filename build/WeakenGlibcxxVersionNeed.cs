using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

// Marks the GLIBCXX_3.4.32 version-need of libLibTorchSharp.so weak in an output folder, when the system's
// libstdc++ does not provide that version. See GlibcxxWeaken.targets for why.
public class WeakenGlibcxxVersionNeed : Task
{
    private const string Needed = "GLIBCXX_3.4.32";
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    public string Directory { get; set; } = "";

    public override bool Execute()
    {
        if (!System.IO.Directory.Exists(Directory)) return true;
        if (SystemHasVersion()) return true;
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories))
        {
            var outcome = Patch(file);
            Log.LogMessage(MessageImportance.Normal, $"{file}: {outcome}");
        }
        return !Log.HasLoggedErrors;
    }

    private static bool SystemHasVersion()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        var marker = Encoding.ASCII.GetBytes(Needed + "\0");
        foreach (var path in candidates.Where(File.Exists))
        {
            var bytes = File.ReadAllBytes(path);
            if (IndexOf(bytes, marker) >= 0) return true;
            return false;
        }
        return false;
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i <= haystack.Length - needle.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    private string Patch(string file)
    {
        var data = File.ReadAllBytes(file);
        if (data.Length < 64 || data[0] != 0x7f || data[1] != (byte)'E' || data[4] != 2 || data[5] != 1)
            return "not a little-endian ELF64 file, left alone";
        long shoff = BitConverter.ToInt64(data, 0x28);
        int shentsize = BitConverter.ToUInt16(data, 0x3A);
        int shnum = BitConverter.ToUInt16(data, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(data, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(data, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(data, (int)sh + 0x28);
            long strOffset = BitConverter.ToInt64(data, (int)(shoff + (long)link * shentsize) + 0x18);
            long verneed = offset;
            while (true)
            {
                int auxCount = BitConverter.ToUInt16(data, (int)verneed + 2);
                long aux = verneed + BitConverter.ToUInt32(data, (int)verneed + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    uint nameOffset = BitConverter.ToUInt32(data, (int)aux + 8);
                    if (ReadString(data, strOffset + nameOffset) == Needed)
                    {
                        ushort flags = BitConverter.ToUInt16(data, (int)aux + 4);
                        if ((flags & VerFlagWeak) != 0) return "already weak";
                        flags |= VerFlagWeak;
                        var temp = file + ".tmp";
                        data[aux + 4] = (byte)(flags & 0xff);
                        data[aux + 5] = (byte)(flags >> 8);
                        File.WriteAllBytes(temp, data);
                        File.Delete(file);
                        File.Move(temp, file);
                        return "marked " + Needed + " weak";
                    }
                    uint nextAux = BitConverter.ToUInt32(data, (int)aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint next = BitConverter.ToUInt32(data, (int)verneed + 12);
                if (next == 0) break;
                verneed += next;
            }
        }
        return "no " + Needed + " need found, left alone";
    }

    private static string ReadString(byte[] data, long offset)
    {
        int end = (int)offset;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)offset, end - (int)offset);
    }
}
