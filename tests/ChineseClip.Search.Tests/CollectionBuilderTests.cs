using ChineseClip.Data.Formats;

namespace ChineseClip.Search.Tests;

public class CollectionBuilderTests
{
    internal static (string Dir, BuildResult Result, List<string> Rejects) BuildFromFixture(ClipEmbedder embedder, string? dir = null)
    {
        dir ??= Path.Combine(Fixtures.TempDir("collection"), "c");
        var rejects = new List<string>();
        var sources = ImageSources.Open(Fixtures.Tiny("test_imgs.tsv"), null, rejects.Add);
        CollectionVersion? current = CollectionFiles.Exists(dir) ? CollectionVersion.Open(dir) : null;
        var result = CollectionBuilder.Add(dir, "tiny", embedder, sources, new BuildOptions { BatchSize = 4, Threads = 2 }, rejects.Add, current: current);
        current?.Dispose();
        return (dir, result, rejects);
    }

    [Fact]
    public void A_tsv_with_its_texts_becomes_a_collection_whose_exact_search_finds_each_caption_s_image()
    {
        using var embedder = Fixtures.TinyEmbedder();
        var (dir, result, rejects) = BuildFromFixture(embedder);
        Assert.Empty(rejects);
        Assert.Equal(6, result.Added);

        using var version = CollectionVersion.Open(dir);
        Assert.Equal(6, version.Manifest.Count);
        Assert.Equal(12, version.Manifest.Texts);
        Assert.Equal(64, version.Manifest.Dimension);
        Assert.Equal(embedder.Model.Sha256, version.Manifest.Model.Sha256);
        Assert.True(File.Exists(CollectionFiles.Thumbnail(dir, 1001)));
        var texts = TextJsonl.Read(Fixtures.Tiny("test_texts.jsonl"), _ => { }).ToList();
        Assert.Equal(texts.Select(t => t.TextId).Order(), version.Texts.Select(t => t.Id).Order());
        Assert.Equal(texts.First(t => t.TextId == 10).Text, version.TextsById[10].Text);

        // A caption's own vector, searched over the captions, finds itself; exact and HNSW agree on such a small set.
        foreach (var text in version.Texts)
        {
            float[] query = version.TextVectors.Row(version.TextVectors.Ids.ToList().IndexOf(text.Id));
            Assert.Equal(text.Id, version.Search(SearchTarget.Texts, query, 1, exact: true)[0].Id);
            Assert.Equal(text.Id, version.Search(SearchTarget.Texts, query, 1, exact: false, exactBelow: 0)[0].Id);
        }
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public void A_rerun_adds_nothing_and_publishes_no_new_version()
    {
        using var embedder = Fixtures.TinyEmbedder();
        var (dir, _, _) = BuildFromFixture(embedder);
        var again = BuildFromFixture(embedder, dir);
        Assert.Equal(0, again.Result.Added);
        Assert.Equal(6, again.Result.AlreadyThere);
        Assert.Null(again.Result.Manifest);
        Assert.Equal(1, CollectionFiles.ReadManifest(dir).Version);
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public void A_folder_with_an_unreadable_image_lists_it_with_its_reason_and_keeps_the_rest()
    {
        string root = Fixtures.TempDir("folder"), images = Path.Combine(root, "images"), dir = Path.Combine(root, "c");
        Directory.CreateDirectory(images);
        var fixture = ImageTsv.Read(Fixtures.Tiny("test_imgs.tsv"), _ => { }).Take(3).ToList();
        for (int i = 0; i < fixture.Count; i++) File.WriteAllBytes(Path.Combine(images, $"img{i}.png"), fixture[i].Bytes);
        File.WriteAllText(Path.Combine(images, "img0.txt"), "一条小狗\n草地上的狗\n");
        File.WriteAllBytes(Path.Combine(images, "broken.jpg"), [0xFF, 0xD8, 0xFF, 0x00, 0x01]);
        using var embedder = Fixtures.TinyEmbedder();
        var rejects = new List<string>();
        var result = CollectionBuilder.Add(dir, "folder", embedder, ImageSources.Open(images, null, rejects.Add), new BuildOptions(), rejects.Add);

        Assert.Equal(3, result.Added);
        Assert.Equal(1, result.Rejected);
        Assert.Contains(rejects, r => r.Contains("broken.jpg"));
        using var version = CollectionVersion.Open(dir);
        var dog = version.Images.Single(i => i.Source.EndsWith("img0.png"));
        Assert.Equal(["一条小狗", "草地上的狗"], dog.Captions);
        Assert.Equal(2, version.Texts.Count);
        Assert.All(version.Texts, t => Assert.Equal(dog.Id, t.ImageId));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Images_without_any_caption_make_a_collection_with_no_texts()
    {
        string root = Fixtures.TempDir("no-captions"), images = Path.Combine(root, "images"), dir = Path.Combine(root, "c");
        Directory.CreateDirectory(images);
        File.WriteAllBytes(Path.Combine(images, "a.png"), ImageTsv.Read(Fixtures.Tiny("test_imgs.tsv"), _ => { }).First().Bytes);
        using var embedder = Fixtures.TinyEmbedder();
        CollectionBuilder.Add(dir, "c", embedder, ImageSources.Open(images, null, _ => { }), new BuildOptions(), e => throw new Exception(e));
        using var version = CollectionVersion.Open(dir);
        Assert.Equal(1, version.Manifest.Count);
        Assert.Equal(0, version.Manifest.Texts);
        Assert.Empty(version.Search(SearchTarget.Texts, version.ImageVectors.Row(0), 5, exact: true));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Removing_an_image_makes_a_version_without_it_or_its_captions()
    {
        using var embedder = Fixtures.TinyEmbedder();
        var (dir, _, _) = BuildFromFixture(embedder);
        using (var version = CollectionVersion.Open(dir)) CollectionBuilder.Remove(version, new HashSet<long> { 1001 }, new BuildOptions());

        using var after = CollectionVersion.Open(dir);
        Assert.Equal(2, after.Manifest.Version);
        Assert.DoesNotContain(1001L, after.ImagesById.Keys);
        Assert.DoesNotContain(after.Texts, t => t.ImageId == 1001);
        Assert.Equal(5, after.ImageVectors.Count);
        var query = after.ImageVectors.Row(0);
        Assert.DoesNotContain(after.Search(SearchTarget.Images, query, 6, exact: false, exactBelow: 0), h => h.Id == 1001);
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public void A_half_written_version_is_never_served()
    {
        using var embedder = Fixtures.TinyEmbedder();
        var (dir, _, _) = BuildFromFixture(embedder);
        // What a writer killed mid-way leaves: a temporary version folder, and collection.json still naming v1.
        string half = Path.Combine(dir, ".v2.0123.tmp");
        Directory.CreateDirectory(half);
        File.WriteAllText(Path.Combine(half, CollectionFiles.Images), "{\"id\": 1, \"sou");

        using (var version = CollectionVersion.Open(dir))
        {
            Assert.Equal(1, version.Manifest.Version);
            Assert.Equal(6, version.Images.Count);
        }
        // The next write does not reuse the half-written number.
        using (var version = CollectionVersion.Open(dir)) CollectionBuilder.Remove(version, new HashSet<long> { 1002 }, new BuildOptions());
        Assert.Equal(3, CollectionFiles.ReadManifest(dir).Version);
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public void Reembedding_keeps_every_id_and_records_the_new_model()
    {
        using var embedder = Fixtures.TinyEmbedder();
        var (dir, _, _) = BuildFromFixture(embedder);
        using var shorter = ClipEmbedder.Load(Fixtures.TinyModel(contextLength: 24));
        using (var version = CollectionVersion.Open(dir))
        {
            var rejects = new List<string>();
            var result = CollectionBuilder.Reembed(version, shorter, new BuildOptions(), rejects.Add);
            Assert.Empty(rejects);
            Assert.Equal(6, result.Added);
        }
        using var after = CollectionVersion.Open(dir);
        Assert.Equal(24, after.Manifest.Model.ContextLength);
        Assert.Equal(new long[] { 1001, 1002, 1003, 1004, 1005, 1006 }, after.Images.Select(i => i.Id).Order());
        Assert.Equal(12, after.Texts.Count);
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public void Adding_with_another_model_than_the_collection_s_is_refused()
    {
        using var embedder = Fixtures.TinyEmbedder();
        var (dir, _, _) = BuildFromFixture(embedder);
        using var other = ClipEmbedder.Load(Fixtures.TinyModel(contextLength: 24));
        using var version = CollectionVersion.Open(dir);
        var e = Assert.Throws<InvalidDataException>(() => CollectionBuilder.Add(dir, "tiny", other,
            ImageSources.Open(Fixtures.Tiny("test_imgs.tsv"), null, _ => { }), new BuildOptions(), _ => { }, current: version));
        Assert.Contains("deploy", e.Message);
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }
}
