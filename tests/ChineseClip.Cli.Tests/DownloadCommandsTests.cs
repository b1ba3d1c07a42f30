using System.IO.Compression;
using System.Net;
using System.Net.Sockets;

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
