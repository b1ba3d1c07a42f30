// cnclip bench preprocess: the official eval transform (decode + bicubic squash + normalise) over an imgs.tsv, timed.
// --fast times the opt-in scaled JPEG decoding (ImageTransformOptions.ScaledJpegDecode) instead of the exact path.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Imaging;

namespace ChineseClip.Cli.Commands;

public static class BenchPreprocessCommand
{
    public static Command Create(CliIO io)
    {
        var input = new Option<FileInfo>("--input") { Description = "an imgs.tsv file (image_id<TAB>base64)", Required = true };
        var resolution = new Option<int>("--res") { Description = "output resolution R (R x R)", DefaultValueFactory = _ => 224 };
        var threads = new Option<int>("--threads") { Description = "worker threads", DefaultValueFactory = _ => 1 };
        var rounds = new Option<int>("--rounds") { Description = "passes over the file; the median pass is reported", DefaultValueFactory = _ => 3 };
        var fast = new Option<bool>("--fast")
        {
            Description = "decode large JPEGs scaled by 1/2, 1/4 or 1/8 with libjpeg-turbo (apt-get install libturbojpeg0); pixels close to, not equal to, the exact mode's",
        };
        var command = new Command("preprocess", "Time the official eval image transform; prints one JSON line with images_per_s.")
        {
            input, resolution, threads, rounds, fast,
        };
        command.SetAction(r => CliApp.Guard(io, () =>
        {
            var file = r.GetValue(input)!;
            if (!file.Exists) throw new CliException($"{file.FullName}: input file not found");
            int res = r.GetValue(resolution), t = r.GetValue(threads), n = r.GetValue(rounds);
            if (res < 1 || t < 1 || n < 1) throw new CliException("--res, --threads and --rounds must be at least 1");
            bool scaled = r.GetValue(fast);
            var transform = new ImageTransform(new ImageTransformOptions(res, ScaledJpegDecode: scaled));
            var images = ImageTsv.Read(file.FullName, e => io.Error.WriteLine($"cnclip: error: {e}")).Select(i => i.Bytes).ToList();
            if (images.Count == 0) throw new CliException($"{file.FullName}: no images");
            var buffers = new ThreadLocal<float[]>(() => new float[3 * res * res]);
            var seconds = new List<double>();
            int failed = 0;
            for (int round = 0; round < n; round++)
            {
                var watch = Stopwatch.StartNew();
                Parallel.ForEach(images, new ParallelOptions { MaxDegreeOfParallelism = t }, bytes =>
                {
                    try { transform.ToPixels(bytes, buffers.Value); }
                    catch (InvalidImageException) { Interlocked.Increment(ref failed); }
                });
                seconds.Add(watch.Elapsed.TotalSeconds);
            }
            double median = seconds.Order().ElementAt(seconds.Count / 2);
            io.Out.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "preprocess", mode = scaled ? "fast" : "exact", images = images.Count, res, threads = t, rounds = n,
                images_per_s = Math.Round(images.Count / median, 1), ms_per_image = Math.Round(median * 1000 / images.Count, 3),
                failed = failed / n,
            }));
            return ExitCodes.Success;
        }));
        return command;
    }
}
