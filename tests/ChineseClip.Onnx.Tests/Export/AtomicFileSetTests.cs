using ChineseClip.Onnx.Export;

namespace ChineseClip.Onnx.Tests.Export;

public class AtomicFileSetTests
{
    [Fact]
    public void Files_appear_only_on_commit_and_an_abandoned_set_leaves_the_folder_as_it_was()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-atomic").FullName;
        string a = Path.Combine(dir, "a.onnx"), b = Path.Combine(dir, "b.onnx");
        File.WriteAllText(a, "old a");
        using (var set = new AtomicFileSet())
        {
            File.WriteAllText(set.Add(a), "new a");
            File.WriteAllText(set.Add(b), "new b");
            // abandoned (an exception before Commit): nothing changes
        }
        Assert.Equal(["a.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.Equal("old a", File.ReadAllText(a));

        File.WriteAllText(Path.Combine(dir, "a.onnx.data"), "stale");
        using (var set = new AtomicFileSet())
        {
            string dataTemp = set.Add(Path.Combine(dir, "a.onnx.data"));
            File.WriteAllText(set.Add(a), "new a");
            set.RemoveOnCommit(Path.Combine(dir, "a.onnx.data"));
            Assert.False(File.Exists(dataTemp));  // not written this time
            set.Commit();
        }
        Assert.Equal(["a.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.Equal("new a", File.ReadAllText(a));
        Directory.Delete(dir, true);
    }
}
