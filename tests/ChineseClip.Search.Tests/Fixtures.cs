using ChineseClip.Model;

namespace ChineseClip.Search.Tests;

/// <summary>The official-tiny fixture (a 64-d model with its checkpoint, six images and twelve captions).</summary>
static class Fixtures
{
    public static string Tiny(string name) => SharedFiles.Path("fixtures", "official-tiny", name);
    public static string Vocab => SharedFiles.Path("reference", "vocab.txt");
    public static string Arch => Tiny("arch.json");
    public static string Checkpoint => Tiny("parity.pt");

    public static ModelInfo TinyModel(int contextLength = 52) => ModelInfo.Of(Checkpoint, Arch, Vocab, contextLength);

    public static ClipEmbedder TinyEmbedder() => ClipEmbedder.Load(TinyModel());

    public static ClipModel TinyClipModel() => ClipModel.Load(Architectures.Resolve(Arch), Checkpoint);

    public static string TempDir(string prefix) => Directory.CreateTempSubdirectory(prefix).FullName;
}
