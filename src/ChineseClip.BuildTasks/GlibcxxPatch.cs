// Build-time fix for TorchSharp 0.107 on Debian 12 (see ../../../shared/docs/platform-notes.md).
//
// libLibTorchSharp.so was linked against GCC 13's libstdc++ and lists a need for the symbol version GLIBCXX_3.4.32,
// which Debian 12's libstdc++ (up to 3.4.30) lacks, so the loader refuses the library. The only symbol carrying that
// version is a dummy no relocation uses, so marking the version requirement weak (VER_FLG_WEAK in its Elf64_Vernaux
// record) lets the loader accept the library with a warning. The task runs on every build and publish output; it is
// idempotent and does nothing where the system libstdc++ already provides the version.
//
// This is an MSBuild inline task (RoslynCodeTaskFactory): it must compile against netstandard2.0 with no packages.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class PatchGlibcxxVersionNeed : Task
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;
    const string Version = "GLIBCXX_3.4.32";

    [Required] public string Directory { get; set; } = "";

    public override bool Execute()
    {
        if (!System.IO.Directory.Exists(Directory)) return true;
        string[] targets = System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories);
        if (targets.Length == 0) return true;
        if (SystemHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "System libstdc++ provides " + Version + "; nothing to patch.");
            return true;
        }
        foreach (string path in targets)
        {
            try
            {
                string result = Patch(path);
                Log.LogMessage(MessageImportance.Low, path + ": " + result);
            }
            catch (Exception e)
            {
                Log.LogError("Cannot patch " + path + ": " + e.Message);
                return false;
            }
        }
        return true;
    }

    static bool SystemHasVersion()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        foreach (string c in candidates)
        {
            if (!File.Exists(c)) continue;
            byte[] bytes = File.ReadAllBytes(c);
            return IndexOf(bytes, Encoding.ASCII.GetBytes(Version + "\0")) >= 0;
        }
        return false; // no libstdc++ found where we look: patching is harmless
    }

    static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    /// <summary>Marks the GLIBCXX_3.4.32 version need weak; returns what it did.</summary>
    public static string Patch(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("not a little-endian ELF64 file");
        ulong shoff = BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            long sh = (long)shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28);
            uint count = BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)((long)shoff + link * shentsize) + 0x18);
            long vn = offset;
            for (uint n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    uint name = BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (ReadCString(elf, strtab + name) == Version)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlgWeak) != 0) return "already weak";
                        flags |= VerFlgWeak;
                        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write))
                        {
                            f.Position = aux + 4;
                            f.Write(BitConverter.GetBytes(flags), 0, 2);
                        }
                        return "marked " + Version + " weak";
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(elf, (int)vn + 12);
            }
        }
        return "no " + Version + " requirement";
    }

    static string ReadCString(byte[] b, long at)
    {
        int end = (int)at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
    }
}
