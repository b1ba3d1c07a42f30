// Ids derived from content, so that the same image or caption gets the same id in every run.
using System.Security.Cryptography;
using System.Text;

namespace ChineseClip.Data.Private;

public static class StableIds
{
    /// <summary>The first 8 bytes of the SHA-256 of <paramref name="content"/>, below 2^53 so that tools reading ids
    /// as doubles keep them exact; a collision takes the next free id (deterministically) and is added to <paramref name="used"/>.</summary>
    public static long Next(string content, HashSet<long> used)
    {
        long id = (long)(BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(content)), 0) & ((1UL << 53) - 1));
        while (!used.Add(id)) id = (id + 1) & ((1L << 53) - 1);
        return id;
    }
}
