namespace ChineseClip.Tests;

/// <summary>Finds ../shared/ (reference files and fixtures) beside the repository root, from any test output folder.</summary>
public static class SharedFiles
{
    public static readonly string Root = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "ChineseClip.sln")))
            {
                string shared = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared"));
                if (Directory.Exists(shared)) return shared;
                throw new DirectoryNotFoundException($"{shared}: the shared reference folder is missing beside the repository");
            }
        }
        throw new DirectoryNotFoundException("ChineseClip.sln not found above " + AppContext.BaseDirectory);
    }
}
