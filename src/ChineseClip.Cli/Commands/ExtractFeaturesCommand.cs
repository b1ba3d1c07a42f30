// cnclip extract-features: the official extract_features.py. Reads {split}_imgs.tsv and {split}_texts.jsonl,
// writes {split}_imgs.img_feat.jsonl and {split}_texts.txt_feat.jsonl (ids kept, features L2-normalised), with TorchSharp
// over a checkpoint (--backend torch) or ONNX Runtime over the graphs export-onnx wrote (--backend onnx).
using System.CommandLine;
using ChineseClip.Data.Formats;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Inference;
using ChineseClip.Model.Text;
using ChineseClip.Model.Towers;
using ChineseClip.Onnx.Export;
using ChineseClip.Onnx.Runtime;
using ChineseClip.Search;

namespace ChineseClip.Cli.Commands;

public static class ExtractFeaturesCommand
{
    public static Command Create(CliIO io)
    {
        var checkpoint = new Option<FileInfo?>("--checkpoint") { Description = "official .pt, plain state dict, or (official or Hugging Face) .safetensors (--backend torch)" };
        var arch = new Option<string?>("--arch") { Description = "VISION@TEXT or a merged architecture .json (--backend torch; with onnx, checked against the export)" };
        var vocab = new Option<FileInfo>("--vocab") { Description = "vocab.txt of the text tower", Required = true };
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "folder holding {split}_imgs.tsv and/or {split}_texts.jsonl", Required = true };
        var split = new Option<string>("--split") { Description = "split name, e.g. valid or test", Required = true };
        var outputDir = new Option<DirectoryInfo>("--output-dir") { Description = "where the feature files are written", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "images or texts per forward pass", DefaultValueFactory = _ => 64 };
        var contextLength = new Option<int?>("--context-length") { Description = "text length with [CLS] and [SEP] (default 52; with --backend onnx, the export's)" };
        var backend = new Option<string>("--backend") { Description = "torch (TorchSharp over the checkpoint) or onnx (ONNX Runtime over an export-onnx folder)", DefaultValueFactory = _ => "torch" };
        backend.AcceptOnlyFromAmong("torch", "onnx");
        var onnx = new Option<DirectoryInfo?>("--onnx") { Description = "the folder cnclip export-onnx wrote (--backend onnx)" };
        var command = new Command("extract-features", "Compute L2-normalised image and text features in the official format.")
        {
            checkpoint, arch, vocab, dataDir, split, outputDir, batchSize, contextLength, backend, onnx,
        };
        command.SetAction(r => CliApp.Guard(io, () => new Run(io, r.GetValue(batchSize)).Execute(
            new Source(r.GetValue(backend)!, r.GetValue(checkpoint), r.GetValue(arch), r.GetValue(onnx)), r.GetValue(contextLength),
            r.GetValue(vocab)!, r.GetValue(dataDir)!, r.GetValue(split)!, r.GetValue(outputDir)!)));
        return command;
    }

    /// <summary>Where the features come from: a checkpoint run by TorchSharp, or an ONNX export run by ONNX Runtime.</summary>
    sealed record Source(string Backend, FileInfo? Checkpoint, string? Arch, DirectoryInfo? Onnx);

    sealed class Run(CliIO io, int batchSize)
    {
        readonly CliProgress _progress = CliProgress.For(io);
        int _rejected;

        void Reject(string problem)
        {
            _rejected++;
            io.Error.WriteLine($"cnclip: error: {problem}");
        }

        public int Execute(Source source, int? contextOption, FileInfo vocabFile, DirectoryInfo dataDir, string split, DirectoryInfo outputDir)
        {
            if (batchSize < 1) throw new CliException($"--batch-size {batchSize}: must be at least 1");
            if (contextOption is < 3) throw new CliException($"--context-length {contextOption}: must be at least 3");
            if (!dataDir.Exists) throw new CliException($"{dataDir.FullName}: data folder not found");
            string imagesPath = Path.Combine(dataDir.FullName, $"{split}_imgs.tsv");
            string textsPath = Path.Combine(dataDir.FullName, $"{split}_texts.jsonl");
            // A data dir may hold only the official LMDB (lmdb/{split}/imgs and pairs), as the official scripts allow.
            string lmdbSplit = Path.Combine(dataDir.FullName, "lmdb", split);
            bool useLmdb = !File.Exists(imagesPath) && Directory.Exists(Path.Combine(lmdbSplit, "imgs"));
            if (!File.Exists(imagesPath) && !File.Exists(textsPath) && !useLmdb)
                throw new CliException($"neither {imagesPath} nor {textsPath} nor {lmdbSplit} exists");

            var tokenizer = ClipTokenizer.FromVocabFile(vocabFile.FullName);
            var (encoder, config, contextLength) = source.Backend == "onnx" ? OpenOnnx(source, contextOption, vocabFile) : OpenTorch(source, contextOption ?? ClipTokenizer.DefaultContextLength);
            using var _ = encoder;
            if (tokenizer.VocabSize != config.VocabSize)
                throw new CliException($"{vocabFile.FullName}: {tokenizer.VocabSize} tokens, but {config.Name} has vocab_size {config.VocabSize}");
            outputDir.Create();

            if (File.Exists(textsPath) || useLmdb)
            {
                string output = Path.Combine(outputDir.FullName, $"{split}_texts.txt_feat.jsonl");
                var texts = File.Exists(textsPath) ? TextJsonl.Read(textsPath, e => Reject(e.ToString())) : TextsFromPairs(lmdbSplit, Reject);
                int count = WriteFeatures("texts", output, texts, FeatureJsonl.TextIdKey,
                    batch => encoder.EncodeTexts(Tokenize(tokenizer, batch, contextLength)), t => t.TextId);
                io.Error.WriteLine($"{count} text features written to {output}");
            }
            if (File.Exists(imagesPath) || useLmdb)
            {
                var transform = new ImageTransform(config.ImageResolution);
                string output = Path.Combine(outputDir.FullName, $"{split}_imgs.img_feat.jsonl");
                var images = useLmdb ? OfficialLmdb.ReadImages(lmdbSplit, Reject) : ImageTsv.Read(imagesPath, e => Reject(e.ToString()));
                int count = WriteFeatures("images", output, DecodeImages(useLmdb ? lmdbSplit + "/imgs" : imagesPath, images, transform), FeatureJsonl.ImageIdKey,
                    batch => encoder.EncodeImages(Stack(batch, transform.Resolution), batch.Count), i => i.Id);
                io.Error.WriteLine($"{count} image features written to {output}");
            }
            return _rejected == 0 ? ExitCodes.Success : ExitCodes.BadInput;
        }

        static (IClipEncoder Encoder, ClipConfig Config, int ContextLength) OpenTorch(Source source, int contextLength)
        {
            if (source.Onnx is not null) throw new CliException("--onnx is for --backend onnx");
            if (source.Checkpoint is null || source.Arch is null) throw new CliException("--backend torch needs --checkpoint and --arch");
            if (!source.Checkpoint.Exists) throw new CliException($"{source.Checkpoint.FullName}: checkpoint not found");
            ClipConfig config = Architectures.Resolve(source.Arch);
            return (TorchClipEncoder.Load(config, source.Checkpoint.FullName, contextLength), config, contextLength);
        }

        static (IClipEncoder Encoder, ClipConfig Config, int ContextLength) OpenOnnx(Source source, int? contextOption, FileInfo vocabFile)
        {
            if (source.Onnx is null) throw new CliException("--backend onnx needs --onnx DIR (a folder written by cnclip export-onnx)");
            if (source.Checkpoint is not null) throw new CliException("--checkpoint is for --backend torch (an ONNX export holds its weights)");
            var onnx = OnnxExports.Open(source.Onnx.FullName, source.Arch is null ? null : Architectures.Resolve(source.Arch), vocabFile.FullName);
            try
            {
                int contextLength = contextOption ?? onnx.ContextLength;
                if (contextLength > onnx.ContextLength)
                    throw new CliException($"--context-length {contextLength}: {source.Onnx.FullName} was exported for at most {onnx.ContextLength}");
                return (onnx, onnx.Config, contextLength);
            }
            catch
            {
                onnx.Dispose();
                throw;
            }
        }

        // The official eval loader lower-cases and straightens curly quotes before tokenizing. Rows are [CLS] ... [SEP]
        // without a [PAD] tail: an encoder pads as it needs.
        static List<int[]> Tokenize(ClipTokenizer tokenizer, IReadOnlyList<TextRecord> batch, int contextLength)
        {
            long[,] ids = tokenizer.TokenizeBatch(batch.Select(t => TextPreprocess.ForLoader(t.Text)).ToList(), contextLength);
            var rows = new List<int[]>(ids.GetLength(0));
            for (int i = 0; i < ids.GetLength(0); i++)
            {
                int length = ids.GetLength(1);
                while (length > 0 && ids[i, length - 1] == BertModel.PadId) length--;
                var row = new int[length];
                for (int j = 0; j < length; j++) row[j] = (int)ids[i, j];
                rows.Add(row);
            }
            return rows;
        }

        sealed record DecodedImage(long Id, float[] Pixels);

        // Texts of an LMDB-only split: the distinct text ids of its pairs, in pair order.
        static IEnumerable<TextRecord> TextsFromPairs(string lmdbSplit, Action<string> onError) =>
            OfficialLmdb.ReadPairs(lmdbSplit, onError).GroupBy(p => p.TextId)
                .Select(g => new TextRecord(g.Key, g.First().Text, g.Select(p => p.ImageId).ToList()));

        IEnumerable<DecodedImage> DecodeImages(string path, IEnumerable<ImageRecord> records, ImageTransform transform)
        {
            // Decode a batch of images in parallel, keeping the file order.
            foreach (var chunk in records.Chunk(batchSize))
            {
                var decoded = new DecodedImage?[chunk.Length];
                var problems = new string?[chunk.Length];
                Parallel.For(0, chunk.Length, i =>
                {
                    try
                    {
                        decoded[i] = new DecodedImage(chunk[i].ImageId, transform.ToPixels(chunk[i].Bytes));
                    }
                    catch (InvalidImageException e)
                    {
                        problems[i] = chunk[i].Line > 0
                            ? $"{path}:{chunk[i].Line}: image {chunk[i].ImageId}: {e.Message}"
                            : $"{path}: image {chunk[i].ImageId}: {e.Message}";
                    }
                });
                for (int i = 0; i < chunk.Length; i++)
                {
                    if (problems[i] is { } p) Reject(p);
                    else yield return decoded[i]!;
                }
            }
        }

        static float[] Stack(IReadOnlyList<DecodedImage> batch, int resolution)
        {
            int size = 3 * resolution * resolution;
            var data = new float[batch.Count * size];
            for (int i = 0; i < batch.Count; i++) batch[i].Pixels.CopyTo(data, i * size);
            return data;
        }

        int WriteFeatures<T>(string what, string output, IEnumerable<T> records, string idKey, Func<IReadOnlyList<T>, float[]> encode, Func<T, long> id) =>
            _progress.Run(what, 0, progress => WriteFeatures(output, records, idKey, encode, id, progress));

        int WriteFeatures<T>(string output, IEnumerable<T> records, string idKey, Func<IReadOnlyList<T>, float[]> encode, Func<T, long> id,
            IProgress<CliProgressUpdate> progress)
        {
            int count = 0;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            AtomicFile.Write(output, stream =>
            {
                using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
                foreach (var batch in records.Chunk(batchSize))
                {
                    float[] features = encode(batch);
                    int dim = features.Length / batch.Length;
                    for (int i = 0; i < batch.Length; i++)
                        writer.WriteLine(FeatureJsonl.FormatLine(idKey, id(batch[i]), features.AsSpan(i * dim, dim)));
                    count += batch.Length;
                    progress.Report(new(count, Detail: $"{count / Math.Max(1e-9, watch.Elapsed.TotalSeconds):F1}/s"));
                }
                writer.Flush();
            });
            return count;
        }
    }
}
