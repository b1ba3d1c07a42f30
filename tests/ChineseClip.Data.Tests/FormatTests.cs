using ChineseClip.Data.Formats;

namespace ChineseClip.Data.Tests;

public class FormatTests
{
    [Theory]
    [InlineData(0.1f, "0.10000000149011612")]
    [InlineData(-0.08541497588157654f, "-0.08541497588157654")]
    [InlineData(1e-5f, "9.999999747378752e-06")]
    [InlineData(1e-4f, "9.999999747378752e-05")]
    [InlineData(0f, "0.0")]
    [InlineData(-0f, "-0.0")]
    [InlineData(1f, "1.0")]
    [InlineData(123456f, "123456.0")]
    public void Floats_are_written_as_python_writes_them(float value, string expected) =>
        Assert.Equal(expected, FeatureJsonl.PythonRepr(value));

    [Fact]
    public void A_feature_line_has_json_dumps_separators() =>
        Assert.Equal("{\"image_id\": 7, \"feature\": [0.5, -1.0]}", FeatureJsonl.FormatLine("image_id", 7, [0.5f, -1f]));

    [Fact]
    public void The_official_fixture_texts_and_images_read_with_ids_in_order()
    {
        var errors = new List<RecordError>();
        var images = ImageTsv.Read(SharedFiles.Path("fixtures", "official-tiny", "test_imgs.tsv"), errors.Add).ToList();
        var texts = TextJsonl.Read(SharedFiles.Path("fixtures", "official-tiny", "test_texts.jsonl"), errors.Add).ToList();
        Assert.Empty(errors);
        Assert.Equal(new long[] { 1001, 1002, 1003, 1004, 1005, 1006 }, images.Select(i => i.ImageId));
        Assert.Equal(0xFF, images[0].Bytes[0]); // JPEG SOI
        Assert.Equal(10, texts[0].TextId);
        Assert.Equal([1001L], texts[0].ImageIds);
    }

    [Fact]
    public void Bad_lines_are_reported_with_file_and_line_and_the_rest_is_read()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-formats").FullName;
        string imgs = Path.Combine(dir, "x_imgs.tsv"), texts = Path.Combine(dir, "x_texts.jsonl");
        File.WriteAllLines(imgs, ["1\t" + Base64.Encode([1, 2, 3], urlSafe: true), "abc\tAAAA", "3\t!!notbase64!!", "no tab here", "5\t_-8"]);
        File.WriteAllLines(texts, ["{\"text_id\": 1, \"text\": \"a\"}", "{\"text_id\": \"x\", \"text\": \"b\"}", "not json", "{\"text_id\": 4, \"text\": \"d\", \"image_ids\": [1]}"]);
        var errors = new List<RecordError>();
        var imageIds = ImageTsv.Read(imgs, errors.Add).Select(r => r.ImageId).ToList();
        var textIds = TextJsonl.Read(texts, errors.Add).Select(r => r.TextId).ToList();
        Assert.Equal([1L, 5L], imageIds);
        Assert.Equal([1L, 4L], textIds);
        Assert.Equal(
        [
            $"{imgs}:2: image_id 'abc' is not a 64-bit integer", $"{imgs}:3: image 3: invalid base64",
            $"{imgs}:4: expected image_id<TAB>base64", $"{texts}:2: field 'text_id' missing or not a 64-bit integer",
        ], errors.Take(4).Select(e => e.ToString()));
        Assert.StartsWith($"{texts}:3: invalid JSON", errors[4].ToString());
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Urlsafe_and_standard_base64_decode_to_the_same_bytes()
    {
        byte[] data = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        Assert.Equal(data, Base64.Decode(Base64.Encode(data, urlSafe: true)));
        Assert.Equal(data, Base64.Decode(Base64.Encode(data).TrimEnd('=')));
    }
}
