// cnclip extract-features: the official extract_features.py. Reads {split}_imgs.tsv and {split}_texts.jsonl,
// writes {split}_imgs.img_feat.jsonl and {split}_texts.txt_feat.jsonl (ids kept, features L2-normalised).
using System.CommandLine;
using ChineseClip.Data.Formats;
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Model.Imaging;
using ChineseClip.Model.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Cli.Commands;

public static class ExtractFeaturesCommand
{
    public static Command Create(CliIO io)
    {
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "official .pt, plain state dict, or (official or Hugging Face) .safetensors", Required = true };
        var arch = new Option<string>("--arch") { Description = "VISION@TEXT or a merged architecture .json", Required = true };
        var vocab = new Option<FileInfo>("--vocab") { Description = "vocab.txt of the text tower", Required = true };
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "folder holding {split}_imgs.tsv and/or {split}_texts.jsonl", Required = true };
        var split = new Option<string>("--split") { Description = "split name, e.g. valid or test", Required = true };
        var outputDir = new Option<DirectoryInfo>("--output-dir") { Description = "where the feature files are written", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "images or texts per forward pass", DefaultValueFactory = _ => 64 };
        var contextLength = new Option<int>("--context-length") { Description = "text length with [CLS] and [SEP]", DefaultValueFactory = _ => ClipTokenizer.DefaultContextLength };
        var command = new Command("extract-features", "Compute L2-normalised image and text features in the official format.")
        {
            checkpoint, arch, vocab, dataDir, split, outputDir, batchSize, contextLength,
        };
        command.SetAction(r => CliApp.Guard(io, () => new Run(io, r.GetValue(batchSize), r.GetValue(contextLength)).Execute(
            r.GetValue(checkpoint)!, r.GetValue(arch)!, r.GetValue(vocab)!, r.GetValue(dataDir)!, r.GetValue(split)!, r.GetValue(outputDir)!)));
        return command;
    }

    sealed class Run(CliIO io, int batchSize, int contextLength)
    {
        int _rejected;

        void Reject(string problem)
        {
            _rejected++;
            io.Error.WriteLine($"cnclip: error: {problem}");
        }

        public int Execute(FileInfo checkpoint, string archName, FileInfo vocabFile, DirectoryInfo dataDir, string split, DirectoryInfo outputDir)
        {
            if (batchSize < 1) throw new CliException($"--batch-size {batchSize}: must be at least 1");
            if (contextLength < 3) throw new CliException($"--context-length {contextLength}: must be at least 3");
            if (!dataDir.Exists) throw new CliException($"{dataDir.FullName}: data folder not found");
            string imagesPath = Path.Combine(dataDir.FullName, $"{split}_imgs.tsv");
            string textsPath = Path.Combine(dataDir.FullName, $"{split}_texts.jsonl");
            // A data dir may hold only the official LMDB (lmdb/{split}/imgs and pairs), as the official scripts allow.
            string lmdbSplit = Path.Combine(dataDir.FullName, "lmdb", split);
            bool useLmdb = !File.Exists(imagesPath) && Directory.Exists(Path.Combine(lmdbSplit, "imgs"));
            if (!File.Exists(imagesPath) && !File.Exists(textsPath) && !useLmdb)
                throw new CliException($"neither {imagesPath} nor {textsPath} nor {lmdbSplit} exists");
            if (!checkpoint.Exists) throw new CliException($"{checkpoint.FullName}: checkpoint not found");

            ClipConfig config = Architectures.Resolve(archName);
            var tokenizer = ClipTokenizer.FromVocabFile(vocabFile.FullName);
            if (tokenizer.VocabSize != config.VocabSize)
                throw new CliException($"{vocabFile.FullName}: {tokenizer.VocabSize} tokens, but {config.Name} has vocab_size {config.VocabSize}");
            using var model = ClipModel.Load(config, checkpoint.FullName);
            model.eval();
            using var _ = no_grad();
            outputDir.Create();

            if (File.Exists(textsPath) || useLmdb)
            {
                string output = Path.Combine(outputDir.FullName, $"{split}_texts.txt_feat.jsonl");
                var texts = File.Exists(textsPath) ? TextJsonl.Read(textsPath, e => Reject(e.ToString())) : TextsFromPairs(lmdbSplit, Reject);
                int count = WriteFeatures(output, texts, FeatureJsonl.TextIdKey,
                    batch => ClipModel.Normalize(model.EncodeText(Tokenize(tokenizer, batch))), t => t.TextId);
                io.Error.WriteLine($"{count} text features written to {output}");
            }
            if (File.Exists(imagesPath) || useLmdb)
            {
                var transform = new ImageTransform(config.ImageResolution);
                string output = Path.Combine(outputDir.FullName, $"{split}_imgs.img_feat.jsonl");
                var source = useLmdb ? OfficialLmdb.ReadImages(lmdbSplit, Reject) : ImageTsv.Read(imagesPath, e => Reject(e.ToString()));
                int count = WriteFeatures(output, DecodeImages(useLmdb ? lmdbSplit + "/imgs" : imagesPath, source, transform), FeatureJsonl.ImageIdKey,
                    batch => ClipModel.Normalize(model.EncodeImage(Stack(batch, transform.Resolution))), i => i.Id);
                io.Error.WriteLine($"{count} image features written to {output}");
            }
            return _rejected == 0 ? ExitCodes.Success : ExitCodes.BadInput;
        }

        Tensor Tokenize(ClipTokenizer tokenizer, IReadOnlyList<TextRecord> batch)
        {
            // The official eval loader lower-cases and straightens curly quotes before tokenizing.
            var ids = tokenizer.TokenizeBatch(batch.Select(t => TextPreprocess.ForLoader(t.Text)).ToList(), contextLength);
            return tensor(ids);
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

        static Tensor Stack(IReadOnlyList<DecodedImage> batch, int resolution)
        {
            int size = 3 * resolution * resolution;
            var data = new float[batch.Count * size];
            for (int i = 0; i < batch.Count; i++) batch[i].Pixels.CopyTo(data, i * size);
            return tensor(data, [batch.Count, 3, resolution, resolution]);
        }

        int WriteFeatures<T>(string output, IEnumerable<T> records, string idKey, Func<IReadOnlyList<T>, Tensor> encode, Func<T, long> id)
        {
            int count = 0;
            AtomicFile.Write(output, stream =>
            {
                using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
                foreach (var batch in records.Chunk(batchSize))
                {
                    using var scope = NewDisposeScope();
                    float[] features = encode(batch).contiguous().data<float>().ToArray();
                    int dim = features.Length / batch.Length;
                    for (int i = 0; i < batch.Length; i++)
                        writer.WriteLine(FeatureJsonl.FormatLine(idKey, id(batch[i]), features.AsSpan(i * dim, dim)));
                    count += batch.Length;
                }
                writer.Flush();
            });
            return count;
        }
    }
}
