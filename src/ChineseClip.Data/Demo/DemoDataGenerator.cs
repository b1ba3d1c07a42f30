// Synthetic datasets in the official layout for demos and tests of the three-stage plan: pictures of coloured shapes
// whose Chinese captions name colour, shape, count, position and background. Stage 1 reads like product titles
// (MUGE), stage 2 like scene descriptions (Flickr30k-CN) with a different attribute distribution, stage 3 is another
// domain (patterns: stripes, rings, checks) with its own vocabulary. Deterministic for a seed.
using System.Text;
using System.Text.Json;
using ChineseClip.Data.Formats;
using ChineseClip.Model.Checkpoints;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing.Processors.Quantization;

namespace ChineseClip.Data.Demo;

public sealed record DemoSplitSummary(string Dataset, string Split, int Images, int Texts);

public static class DemoDataGenerator
{
    public static readonly string[] Datasets = ["stage1-muge", "stage2-flickr", "stage3-private"];
    static readonly string[] Splits = ["train", "valid", "test"];
    static readonly int[,] BaseCounts = { { 600, 100, 100 }, { 400, 100, 100 }, { 300, 100, 100 } };

    static readonly (string Name, Rgb24 Colour)[] Colours =
    [
        ("红色", new(220, 30, 30)), ("绿色", new(30, 170, 40)), ("蓝色", new(30, 60, 220)), ("黄色", new(235, 210, 20)),
        ("紫色", new(140, 40, 170)), ("橙色", new(245, 130, 20)), ("黑色", new(15, 15, 15)), ("白色", new(250, 250, 250)),
    ];
    static readonly (string Name, Rgb24 Colour)[] Backgrounds =
        [("白色", new(245, 245, 245)), ("灰色", new(128, 128, 128)), ("浅蓝色", new(170, 210, 240)), ("米色", new(235, 220, 190))];
    static readonly string[] Shapes = ["圆形", "方块", "三角形"];
    static readonly string[] Patterns = ["横条纹", "竖条纹", "圆环", "格子"];
    static readonly string[] Counts = ["一个", "两个", "三个"];
    static readonly string[] Positions = ["左边", "右边", "上方", "下方", "中间"];
    // [CLS] + the longest caption (stage 2's, 21 characters) + [SEP] fits; 32 only padded.
    const int ContextLength = 24;

    sealed record Scene(int Colour, int Shape, int Count, int Position, int Background);

    /// <summary>Writes DIR/{stage}/{split}_imgs.tsv and {split}_texts.jsonl for the three stages.</summary>
    public static IReadOnlyList<DemoSplitSummary> Generate(string outputDir, int seed = 0, double scale = 1.0)
    {
        if (!(scale > 0)) throw new ArgumentOutOfRangeException(nameof(scale), $"scale {scale}: must be positive");
        var summaries = new List<DemoSplitSummary>();
        for (int stage = 0; stage < 3; stage++)
        {
            string dir = Path.Combine(outputDir, Datasets[stage]);
            Directory.CreateDirectory(dir);
            for (int split = 0; split < 3; split++)
            {
                int count = Math.Max(10, (int)Math.Round(BaseCounts[stage, split] * scale));
                summaries.Add(WriteSplit(dir, Datasets[stage], stage, split, count, new Random(unchecked(seed * 1009 + stage * 31 + split))));
            }
        }
        int vocabSize = WriteVocab(outputDir);
        WriteTrainingFiles(outputDir, vocabSize);
        File.WriteAllText(Path.Combine(outputDir, "README.txt"),
            "Synthetic Chinese-CLIP demo data written by `cnclip make-demo-data`: three datasets in the official layout " +
            "({split}_imgs.tsv, {split}_texts.jsonl) standing for the three stages of the plan (MUGE, Flickr30k-CN, private " +
            "data). Pictures of coloured shapes or patterns; the captions name colour, shape, count, position and background.\n" +
            "vocab.txt holds the characters of the captions (a model trained from scratch builds its own vocabulary), " +
            "tiny-arch.json a small architecture, and train-stage{1,2,3}.yaml the three stages, each starting from the previous " +
            "stage's best.pt: `cnclip train --config train-stage1.yaml`, then stage 2, then stage 3.\n");
        return summaries;
    }

    // [PAD] must be id 0 (the attention mask is ids != 0); the rest are the caption characters, sorted.
    static int WriteVocab(string outputDir)
    {
        var characters = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string file in Directory.GetFiles(outputDir, "*_texts.jsonl", SearchOption.AllDirectories))
            foreach (var record in TextJsonl.Read(file, e => throw new InvalidDataException(e.ToString())))
                foreach (var rune in record.Text.ToLowerInvariant().EnumerateRunes())
                    if (!Rune.IsWhiteSpace(rune)) characters.Add(rune.ToString());
        string[] vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", .. characters];
        File.WriteAllText(Path.Combine(outputDir, "vocab.txt"), string.Join('\n', vocab) + "\n");
        return vocab.Length;
    }

    // A small ViT/BERT pair that learns the demo in minutes on two CPU cores, and one config per stage.
    static void WriteTrainingFiles(string outputDir, int vocabSize)
    {
        // A two-block ViT on a 4 x 4 grid of 16 px patches: faster per step than the smallest ModifiedResNet tried
        // ([1,1,1,1] x 16 wide), and it learns the demo in fewer epochs too (README, the demo plan numbers). No text
        // dropout: the model underfits the demo (in-batch accuracy well below 100%), and dropout slowed it.
        File.WriteAllText(Path.Combine(outputDir, "tiny-arch.json"),
            "{\"embed_dim\": 128, \"image_resolution\": 64, \"vision_layers\": [2], \"vision_width\": 128, \"vision_patch_size\": 16,\n" +
            $" \"vocab_size\": {vocabSize}, \"text_hidden_size\": 128, \"text_num_hidden_layers\": 2, \"text_num_attention_heads\": 2,\n" +
            " \"text_intermediate_size\": 512, \"text_max_position_embeddings\": 64, \"text_type_vocab_size\": 2,\n" +
            " \"text_hidden_dropout_prob\": 0.0, \"text_attention_probs_dropout_prob\": 0.0}\n");
        for (int stage = 0; stage < 3; stage++)
        {
            string resume = stage == 0 ? "" :
                $"resume: runs/stage{stage}/checkpoints/best.pt\nreset_optimizer: true\nreset_data_offset: true\n";
            File.WriteAllText(Path.Combine(outputDir, $"train-stage{stage + 1}.yaml"),
                $"# Stage {stage + 1} of the demo plan ({Datasets[stage]}).\n" +
                $"train_data: {Datasets[stage]}\nval_data: {Datasets[stage]}\narch: tiny-arch.json\nvocab: vocab.txt\n{resume}" +
                $"logs: runs\nname: stage{stage + 1}\nbatch_size: 64\nvalid_batch_size: 100\ncontext_length: {ContextLength}\n" +
                $"lr: {(stage == 0 ? "0.002" : "0.0005")}\nwd: 0.001\nwarmup: 20\nmax_epochs: {(stage == 0 ? 80 : 15)}\nlog_interval: 50\n");
        }
        WriteClusterSchedule(outputDir);
    }

    // The same plan as one schedule for the cluster (`cnclip submit demo-schedule.yaml`), shorter so that the AppHost's
    // embedded demo ends within minutes. Paths are absolute: the coordinator and workers resolve them, not the client.
    static void WriteClusterSchedule(string outputDir)
    {
        string root = Path.GetFullPath(outputDir);
        var yaml = new StringBuilder("# The demo plan as one cluster schedule: cnclip submit demo-schedule.yaml\nname: demo\nstages:\n");
        for (int stage = 0; stage < 3; stage++)
        {
            string data = Path.Combine(root, Datasets[stage]);
            yaml.Append($"  - name: {Datasets[stage]}\n    train_data: {data}\n    val_data: {data}\n")
                .Append($"    arch: {Path.Combine(root, "tiny-arch.json")}\n    vocab: {Path.Combine(root, "vocab.txt")}\n")
                .Append($"    init: {(stage == 0 ? "scratch" : "best-of-previous")}\n    hyperparameters:\n")
                .Append($"      batch_size: \"32\"\n      valid_batch_size: \"100\"\n      context_length: \"{ContextLength}\"\n")
                .Append($"      lr: \"{(stage == 0 ? "0.002" : "0.0005")}\"\n      warmup: \"20\"\n      max_epochs: \"{(stage == 0 ? 20 : 6)}\"\n")
                .Append("      log_interval: \"10\"\n");
        }
        File.WriteAllText(Path.Combine(outputDir, "demo-schedule.yaml"), yaml.ToString());
    }

    static DemoSplitSummary WriteSplit(string dir, string dataset, int stage, int split, int count, Random random)
    {
        long idBase = (stage + 1) * 1_000_000L + split * 100_000L;
        var images = new StringBuilder();
        var texts = new StringBuilder();
        int textCount = 0;
        for (int i = 0; i < count; i++)
        {
            var scene = Sample(stage, random);
            long imageId = idBase + i;
            images.Append(imageId).Append('\t').Append(Base64.Encode(Encode(Render(scene, stage, random), i, random))).Append('\n');
            int captions = split == 0 ? 1 + random.Next(2) : 1;
            for (int c = 0; c < captions; c++)
            {
                long textId = idBase + 50_000 + textCount++;
                texts.Append(JsonSerializer.Serialize(new { text_id = textId, text = Caption(scene, stage, c), image_ids = new[] { imageId } },
                    new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })).Append('\n');
            }
        }
        string name = Splits[split];
        AtomicFile.Write(Path.Combine(dir, $"{name}_imgs.tsv"), s => s.Write(Encoding.UTF8.GetBytes(images.ToString())));
        AtomicFile.Write(Path.Combine(dir, $"{name}_texts.jsonl"), s => s.Write(Encoding.UTF8.GetBytes(texts.ToString())));
        return new DemoSplitSummary(dataset, name, count, textCount);
    }

    static Scene Sample(int stage, Random r) => stage switch
    {
        // Stage 2 favours several objects and the left/right positions; stage 1 is uniform.
        1 => new Scene(r.Next(Colours.Length), r.Next(Shapes.Length), r.Next(10) < 7 ? 1 + r.Next(2) : 0,
            r.Next(10) < 6 ? r.Next(2) : r.Next(Positions.Length), r.Next(Backgrounds.Length)),
        2 => new Scene(r.Next(Colours.Length - 1), r.Next(Patterns.Length), 0, 0, r.Next(Backgrounds.Length)),
        _ => new Scene(r.Next(Colours.Length), r.Next(Shapes.Length), r.Next(Counts.Length), r.Next(Positions.Length), r.Next(Backgrounds.Length)),
    };

    static string Caption(Scene s, int stage, int variant)
    {
        string colour = Colours[s.Colour].Name, background = Backgrounds[s.Background].Name;
        return stage switch
        {
            0 => variant == 0
                ? $"{Counts[s.Count]}{colour}{Shapes[s.Shape]}图案 {Positions[s.Position]} {background}底 商品"
                : $"{background}背景 {colour}{Shapes[s.Shape]} {Counts[s.Count]} 位于{Positions[s.Position]}",
            1 => variant == 0
                ? $"{background}的背景上，{Positions[s.Position]}有{Counts[s.Count]}{colour}的{Shapes[s.Shape]}。"
                : $"图片{Positions[s.Position]}画着{Counts[s.Count]}{colour}{Shapes[s.Shape]}，背景是{background}。",
            _ => variant == 0 ? $"{colour}{Patterns[s.Shape]}纹理，{background}底色" : $"{background}底上的{colour}{Patterns[s.Shape]}",
        };
    }

    static Image<Rgb24> Render(Scene s, int stage, Random r)
    {
        int width = 48 + r.Next(113), height = 48 + r.Next(113);
        var image = new Image<Rgb24>(width, height, Backgrounds[s.Background].Colour);
        Rgb24 ink = Colours[s.Colour].Colour;
        if (stage == 2)
        {
            int period = 6 + r.Next(6);
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    double dx = x - width / 2.0, dy = y - height / 2.0, radius = Math.Sqrt(dx * dx + dy * dy);
                    bool on = s.Shape switch
                    {
                        0 => y / period % 2 == 0,
                        1 => x / period % 2 == 0,
                        2 => (int)(radius / period) % 2 == 0,
                        _ => (x / period + y / period) % 2 == 0,
                    };
                    if (on) image[x, y] = ink;
                }
            return image;
        }
        int n = s.Count + 1, size = Math.Max(8, Math.Min(width, height) / (n + 2));
        for (int k = 0; k < n; k++)
        {
            // Objects sit in the named region, spread along it.
            double fx = s.Position switch { 0 => 0.25, 1 => 0.75, _ => (k + 1.0) / (n + 1) };
            double fy = s.Position switch { 2 => 0.25, 3 => 0.75, _ => (k + 1.0) / (n + 1) };
            if (s.Position is 0 or 1) fy = (k + 1.0) / (n + 1);
            if (s.Position is 2 or 3) fx = (k + 1.0) / (n + 1);
            if (s.Position == 4) { fx = 0.5 + (k - (n - 1) / 2.0) * 0.18; fy = 0.5; }
            int cx = (int)(fx * width) + r.Next(-2, 3), cy = (int)(fy * height) + r.Next(-2, 3), half = size / 2;
            for (int y = Math.Max(0, cy - half); y < Math.Min(height, cy + half); y++)
                for (int x = Math.Max(0, cx - half); x < Math.Min(width, cx + half); x++)
                {
                    int dx = x - cx, dy = y - cy;
                    bool inside = s.Shape switch
                    {
                        0 => dx * dx + dy * dy <= half * half,
                        1 => true,
                        _ => dy >= -half && Math.Abs(dx) * 2 <= (dy + half),
                    };
                    if (inside) image[x, y] = ink;
                }
        }
        return image;
    }

    static byte[] Encode(Image<Rgb24> image, int index, Random r)
    {
        using (image)
        {
            int pick = r.Next(20);
            IImageEncoder encoder = pick switch
            {
                < 10 => new JpegEncoder { Quality = 90 },
                < 16 => new PngEncoder(),
                < 18 => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
                // 32-bit rows need no padding: ImageSharp leaves 24-bit row padding uninitialised (not byte-stable).
                18 => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel32 },
                // A fixed palette without dithering: ImageSharp's adaptive quantizer is not byte-stable across calls.
                _ => new GifEncoder { Quantizer = new WebSafePaletteQuantizer(new QuantizerOptions { Dither = null }) },
            };
            using var stream = new MemoryStream();
            image.Save(stream, encoder);
            return stream.ToArray();
        }
    }
}
