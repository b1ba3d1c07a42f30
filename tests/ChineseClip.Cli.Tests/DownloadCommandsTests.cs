using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace ChineseClip.Cli.Tests;

/// <summary>Serves one byte array on loopback, honouring (or ignoring) Range requests, and records what was asked.</summary>
sealed class LocalFileServer : IDisposable
{
    readonly HttpListener _listener = new();
    readonly byte[] _content;
    readonly bool _honourRange;
    public List<string?> RangesAsked { get; } = new();
    public string Url { get; }

    public LocalFileServer(byte[] content, bool honourRange = true)
    {
        _content = content;
        _honourRange = honourRange;
        int port = FreePort();
        Url = $"http://127.0.0.1:{port}/file";
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _ = Task.Run(Serve);
    }

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); } catch { return; }
            string? range = context.Request.Headers["Range"];
            lock (RangesAsked) RangesAsked.Add(range);
            long start = 0;
            if (_honourRange && range is not null && range.StartsWith("bytes=")) start = long.Parse(range[6..].TrimEnd('-'));
            if (start > 0)
            {
                context.Response.StatusCode = 206;
                context.Response.Headers["Content-Range"] = $"bytes {start}-{_content.Length - 1}/{_content.Length}";
            }
            context.Response.ContentLength64 = _content.Length - start;
            await context.Response.OutputStream.WriteAsync(_content.AsMemory((int)start));
            context.Response.Close();
        }
    }

    public void Dispose() => _listener.Close();
}

public class DownloadCommandsTests
{
    static byte[] Payload(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 7 + i / 251)).ToArray();

    [Fact]
    public void A_partial_download_resumes_with_a_range_request()
    {
        byte[] content = Payload(300_000);
        using var server = new LocalFileServer(content);
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName;
        File.WriteAllBytes(Path.Combine(dir, "vocab.txt.part"), content[..120_000]);
        var r = CliRunner.Run("download-model", "vocab", "--output", dir, "--url", server.Url);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(dir, "vocab.txt")));
        Assert.Equal("bytes=120000-", Assert.Single(server.RangesAsked));
        Assert.False(File.Exists(Path.Combine(dir, "vocab.txt.part")));
        Assert.Contains("100%", r.Error);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_server_that_ignores_ranges_gives_the_whole_file_again()
    {
        byte[] content = Payload(50_000);
        using var server = new LocalFileServer(content, honourRange: false);
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName;
        File.WriteAllBytes(Path.Combine(dir, "clip_cn_rn50.pt.part"), Payload(10_000));
        Assert.Equal(0, CliRunner.Run("download-model", "RN50", "--output", dir, "--url", server.Url).ExitCode);
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(dir, "clip_cn_rn50.pt")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_dataset_archive_is_unpacked_into_its_folder()
    {
        using var zip = new MemoryStream();
        using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var w = new StreamWriter(archive.CreateEntry("MUGE/valid_texts.jsonl").Open());
            w.Write("{\"text_id\": 1, \"text\": \"猫\", \"image_ids\": [2]}\n");
        }
        using var server = new LocalFileServer(zip.ToArray());
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName;
        var r = CliRunner.Run("download-dataset", "MUGE", "--output", dir, "--url", server.Url);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.True(File.Exists(Path.Combine(dir, "MUGE", "valid_texts.jsonl")));
        Assert.Equal(Path.Combine(dir, "MUGE"), r.Out.Trim());
        Directory.Delete(dir, true);
    }

    static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    [Fact]
    public void The_right_sha256_passes()
    {
        byte[] content = Payload(70_000);
        using var server = new LocalFileServer(content);
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName;
        var r = CliRunner.Run("download-model", "vocab", "--output", dir, "--url", server.Url, "--sha256", Sha256(content).ToUpperInvariant());
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(dir, "vocab.txt")));
        Assert.Equal(["vocab.txt"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.Contains($"vocab.txt: SHA-256 {Sha256(content)} as expected", r.Error);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_sha256_mismatch_fails_in_one_line_leaves_no_final_file_and_a_rerun_does_not_resume_the_bad_bytes()
    {
        byte[] content = Payload(200_000);
        using var server = new LocalFileServer(content);
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName;
        string target = Path.Combine(dir, "clip_cn_rn50.pt");
        // A .part left by an earlier run whose bytes went bad: the resumed download is complete but wrong.
        byte[] corruptStart = content[..80_000];
        corruptStart[1234] ^= 0xFF;
        File.WriteAllBytes(target + ".part", corruptStart);
        byte[] corruptWhole = [.. corruptStart, .. content[80_000..]];
        string expected = Sha256(content);

        var r = CliRunner.Run("download-model", "RN50", "--output", dir, "--url", server.Url, "--sha256", expected);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal($"cnclip: error: {target}: SHA-256 mismatch: expected {expected}, got {Sha256(corruptWhole)} " +
            "(kept as clip_cn_rn50.pt.bad; run again to download afresh)\n", r.Error[r.Error.IndexOf("cnclip: error:")..]);
        Assert.False(File.Exists(target));
        Assert.False(File.Exists(target + ".part"));
        Assert.Equal(corruptWhole, File.ReadAllBytes(target + ".bad"));
        Assert.Equal("bytes=80000-", Assert.Single(server.RangesAsked));

        // The rerun asks for the whole file (no Range) and gets the right bytes.
        var again = CliRunner.Run("download-model", "RN50", "--output", dir, "--url", server.Url, "--sha256", expected);
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.Null(server.RangesAsked[1]);
        Assert.Equal(content, File.ReadAllBytes(target));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_dataset_archive_with_a_wrong_sha256_is_neither_kept_nor_unpacked()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName, expected = new string('0', 64);
        byte[] archive = Payload(30_000);
        using var server = new LocalFileServer(archive);
        var r = CliRunner.Run("download-dataset", "COCO-CN", "--output", dir, "--url", server.Url, "--sha256", expected);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.EndsWith($"{Path.Combine(dir, "COCO-CN.zip")}: SHA-256 mismatch: expected {expected}, got {Sha256(archive)} " +
            "(kept as COCO-CN.zip.bad; run again to download afresh)\n", r.Error);
        Assert.Equal(["COCO-CN.zip.bad"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));

        var malformed = CliRunner.Run("download-dataset", "COCO-CN", "--output", dir, "--url", server.Url, "--sha256", "abc123");
        Assert.Equal("cnclip: error: --sha256 abc123: 64 hexadecimal digits expected\n", malformed.Error);
        Assert.Single(server.RangesAsked); // the malformed hash was refused before any request
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Offline_and_unknown_names_are_one_line_errors()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-dl").FullName;
        var offline = CliRunner.Run("download-model", "ViT-B-16", "--output", dir, "--url", "http://127.0.0.1:9/nothing");
        Assert.Equal(ExitCodes.BadInput, offline.ExitCode);
        Assert.StartsWith("cnclip: error: cannot reach 127.0.0.1", offline.Error);
        Assert.Single(offline.Error.TrimEnd('\n').Split('\n'));
        var unknown = CliRunner.Run("download-dataset", "ImageNet", "--output", dir);
        Assert.Equal("cnclip: error: unknown name 'ImageNet': use one of MUGE, Flickr30k-CN, COCO-CN\n", unknown.Error);
        Directory.Delete(dir, true);
    }
}
