// How the ranks of a group learn each other's ring addresses. `cnclip train --nproc` uses a shared folder; the
// cluster's coordinator hands addresses out over gRPC with its own implementation.
using System.Diagnostics;

namespace ChineseClip.Distributed;

public interface IRendezvous
{
    /// <summary>Publishes this rank's address and returns every rank's, in rank order, once all have published.</summary>
    IReadOnlyList<string> Exchange(int rank, int worldSize, string address, TimeSpan timeout);
}

/// <summary>Each rank writes <c>rank-{r}.addr</c> into a folder (atomically: temp file, then rename) and polls for
/// the others. The folder must be fresh for each group.</summary>
public sealed class FileRendezvous(string directory) : IRendezvous
{
    public IReadOnlyList<string> Exchange(int rank, int worldSize, string address, TimeSpan timeout)
    {
        Directory.CreateDirectory(directory);
        string mine = Path.Combine(directory, $"rank-{rank}.addr");
        File.WriteAllText(mine + ".tmp", address);
        File.Move(mine + ".tmp", mine, overwrite: true);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var addresses = Enumerable.Range(0, worldSize).Select(r => Path.Combine(directory, $"rank-{r}.addr"))
                .Select(p => File.Exists(p) ? File.ReadAllText(p).Trim() : null).ToArray();
            var missing = Enumerable.Range(0, worldSize).Where(r => string.IsNullOrEmpty(addresses[r])).ToList();
            if (missing.Count == 0) return addresses!;
            if (watch.Elapsed > timeout)
                throw new TimeoutException($"rendezvous in {directory}: rank(s) {string.Join(", ", missing)} of {worldSize} did not register within {timeout.TotalSeconds:F0} s");
            Thread.Sleep(50);
        }
    }
}
