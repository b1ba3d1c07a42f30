using System.Net;
using System.Net.Sockets;

namespace ChineseClip.Cluster.Tests;

/// <summary>The cluster's services as plain processes, started from their build folders.</summary>
public static class ServiceProcesses
{
    // The build folder of a service project, for the configuration these tests were built in.
    public static string Executable(string project, string? program = null)
    {
        var dir = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory));
        string configuration = dir.Parent!.Parent!.Name; // bin/<Configuration>/net10.0/linux-x64/
        string path = Path.Combine(RepositoryRoot(), "src", project, "bin", configuration, "net10.0", "linux-x64", program ?? project);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path}: build the solution first", path);
    }

    /// <summary>The checkout these tests were built in (the folder holding ChineseClip.sln).</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir.FullName, "ChineseClip.sln"))) dir = dir.Parent ?? throw new InvalidOperationException("no ChineseClip.sln above the tests");
        return dir.FullName;
    }

    /// <summary>A loopback port that was free a moment ago.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
