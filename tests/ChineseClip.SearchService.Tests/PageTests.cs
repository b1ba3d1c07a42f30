using Microsoft.Playwright;

namespace ChineseClip.SearchService.Tests;

/// <summary>The page in a real browser (Debian's chromium driven by Playwright) against the service as its own process.</summary>
public class PageTests
{
    const string Chromium = "/usr/bin/chromium";

    /// <summary>Where the screenshot is kept: beside the test assembly, in artifacts/ (CI keeps the test output folder).</summary>
    public static string ScreenshotPath => Path.Combine(AppContext.BaseDirectory, "artifacts", "search-page.png");

    [Fact]
    public async Task Typing_a_query_and_uploading_an_image_show_the_expected_items_first()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: apt-get install chromium fonts-noto-cjk (.ci/run installs them)");
        string root = Tiny.Collections("tiny");
        using var service = await ServiceProcess.StartAsync($"--Search:Directory={root}");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1100, Height = 760 } });
        await page.GotoAsync(service.Address + "/");
        await page.WaitForSelectorAsync("#collection option[value=tiny]", new() { State = WaitForSelectorState.Attached });
        await Assertions.Expect(page.Locator("#model")).ToContainTextAsync("tiny: 6 images");

        // Text -> images: the page shows first what the API ranks first (the fixture's model is untrained, so the API's
        // exact ranking is the expectation; its equality with the official pipeline is tested on the API).
        const string query = "雨后的城市街道，路灯倒映在水里。";
        var api = await Json.ReadAsync(await Json.PostAsync(service.Http, "/v1/search", new { collection = "tiny", text = query, k = 24 }));
        string expected = api.GetProperty("results")[0].GetProperty("id").GetInt64().ToString();
        await page.FillAsync("#text", query);
        await page.PressAsync("#text", "Enter");
        await Assertions.Expect(page.Locator(".card").First).ToHaveAttributeAsync("data-id", expected);
        Assert.Equal(6, await page.Locator(".card").CountAsync());

        // Text -> texts: the caption typed is its own best match.
        await page.CheckAsync("input[name=target][value=texts]");
        await page.PressAsync("#text", "Enter");
        await Assertions.Expect(page.Locator(".card").First.Locator(".captions")).ToHaveTextAsync(query);
        await Assertions.Expect(page.Locator(".card").First).ToHaveAttributeAsync("data-id", "11");

        // Image -> images through the file picker: the image finds itself first, with its thumbnail loaded.
        await page.CheckAsync("input[name=target][value=images]");
        await page.SetInputFilesAsync("#file", new FilePayload { Name = "query.png", MimeType = "image/png", Buffer = Tiny.Image(1003) });
        await Assertions.Expect(page.Locator(".card").First).ToHaveAttributeAsync("data-id", "1003");
        await Assertions.Expect(page.Locator(".card").First.Locator(".score")).ToContainTextAsync("1.0000");
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)");

        // A bad upload shows the service's error and the page keeps working.
        await page.SetInputFilesAsync("#file", new FilePayload { Name = "notes.txt", MimeType = "text/plain", Buffer = "not an image"u8.ToArray() });
        await Assertions.Expect(page.Locator("#status")).ToContainTextAsync("image:");

        await page.SetInputFilesAsync("#file", new FilePayload { Name = "query.png", MimeType = "image/png", Buffer = Tiny.Image(1002) });
        await Assertions.Expect(page.Locator(".card").First).ToHaveAttributeAsync("data-id", "1002");
        Directory.CreateDirectory(Path.GetDirectoryName(ScreenshotPath)!);
        await page.ScreenshotAsync(new() { Path = ScreenshotPath, FullPage = true });
        Assert.True(new FileInfo(ScreenshotPath).Length > 10_000);
        Directory.Delete(root, true);
    }
}
