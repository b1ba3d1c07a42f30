using ChineseClip.Data.Formats;

namespace ChineseClip.Cli.Tests;

public class BuildLmdbCommandTests
{
    static readonly string Fixture = SharedFiles.Path("fixtures", "official-tiny");

    [Fact]
    public void Build_lmdb_writes_the_split_and_reports_its_counts()
    {
        string lmdb = Directory.CreateTempSubdirectory("cnclip-lmdb-cli").FullName;
        var r = CliRunner.Run("build-lmdb", "--data-dir", Fixture, "--splits", "test", "--lmdb-dir", lmdb);
        Assert.True(r.ExitCode == 0, r.Error);
        var counts = OfficialLmdb.ReadCounts(Path.Combine(lmdb, "test"));
        Assert.Equal(6, counts.Images);
        Assert.Equal($"test: 6 images, {counts.Samples} pairs -> {Path.Combine(lmdb, "test")}", r.OutLines.Single());
        Assert.Equal(counts.Samples, OfficialLmdb.ReadPairs(Path.Combine(lmdb, "test"), e => Assert.Fail(e)).Count);
        Directory.Delete(lmdb, true);
    }

    [Fact]
    public void The_official_underscore_flags_work_and_the_default_output_is_under_the_data_dir()
    {
        string data = Directory.CreateTempSubdirectory("cnclip-lmdb-cli").FullName;
        foreach (string f in new[] { "test_imgs.tsv", "test_texts.jsonl" }) File.Copy(Path.Combine(Fixture, f), Path.Combine(data, f));
        var r = CliRunner.Run("build-lmdb", "--data_dir", data, "--splits", "test");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(6, OfficialLmdb.ReadCounts(Path.Combine(data, "lmdb", "test")).Images);
        Directory.Delete(data, true);
    }

    [Fact]
    public void A_missing_split_is_one_line_naming_the_file_and_the_other_splits_still_build()
    {
        string lmdb = Directory.CreateTempSubdirectory("cnclip-lmdb-cli").FullName;
        var r = CliRunner.Run("build-lmdb", "--data-dir", Fixture, "--splits", "train,test", "--lmdb-dir", lmdb);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        string error = Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("cnclip: error: ", error);
        Assert.Contains(Path.Combine(Fixture, "train_imgs.tsv"), error);
        Assert.StartsWith("test: 6 images", r.OutLines.Single());
        Assert.True(Directory.Exists(Path.Combine(lmdb, "test")));
        Directory.Delete(lmdb, true);
    }

    [Fact]
    public void A_missing_data_dir_is_one_line()
    {
        var r = CliRunner.Run("build-lmdb", "--data-dir", "/nonexistent/data", "--splits", "test");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal("cnclip: error: /nonexistent/data: data directory not found", r.Error.TrimEnd('\n'));
    }
}
