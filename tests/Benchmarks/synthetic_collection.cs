// Makes a search collection for timing the service: a randomly initialised model of the given architecture (saved as
// an official .pt) and N synthetic clustered, L2-normalised vectors (the embedding of N images would take hours on a
// CPU; a text query's cost is the text tower plus the search, which this measures). Not a test: used by search-e2e.sh.
//   dotnet run tests/Benchmarks/synthetic_collection.cs -- OUT_DIR ARCH VOCAB COUNT
#:project ../../src/ChineseClip.Search/ChineseClip.Search.csproj
#:property TreatWarningsAsErrors=false
#:property JsonSerializerIsReflectionEnabledByDefault=true
#:property PublishAot=false
using ChineseClip.Model;
using ChineseClip.Model.Checkpoints;
using ChineseClip.Search;
using TorchSharp;
using static TorchSharp.torch;

string output = Path.GetFullPath(args[0]), arch = args[1], vocab = Path.GetFullPath(args[2]);
int count = int.Parse(args[3]);
Directory.CreateDirectory(output);
string checkpoint = Path.Combine(output, "random-init.pt");
manual_seed(1);
var config = Architectures.Resolve(arch);
using (var model = new ClipModel(config))
    OfficialCheckpoint.Save(checkpoint, model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value), epoch: 0, step: 0, name: "random-init");
var info = ModelInfo.Of(checkpoint, arch, vocab, 52);
int dim = config.EmbedDim, clusters = 1000;
using var centres = nn.functional.normalize(randn(clusters, dim), dim: 1);
using var vectors = nn.functional.normalize(centres.index_select(0, randint(clusters, count)) + randn(count, dim) * (0.5 / Math.Sqrt(dim)), dim: 1);
float[] rows = vectors.contiguous().data<float>().ToArray();
long[] ids = Enumerable.Range(1, count).Select(i => (long)i).ToArray();
var settings = new HnswSettings(ExpansionAdd: 64); // a quicker build than the default 128: this collection only times queries
var hnsw = HnswIndex.Create(dim, settings);
hnsw.Add(ids, i => rows.AsSpan(i * dim, dim).ToArray(), Environment.ProcessorCount);
var images = ids.Select(id => new ImageItem { Id = id, Source = $"synthetic/{id}.jpg", Captions = [$"合成图片 {id}"] }).ToList();
using var imageIndex = VectorIndex.FromRows(ids, rows, dim, hnsw);
using var textIndex = VectorIndex.FromRows([], [], dim, null);
string dir = Path.Combine(output, "synthetic");
var manifest = CollectionWriter.Publish(dir, "synthetic", info, settings, new CollectionContent(images, imageIndex, [], textIndex));
Console.WriteLine($"{dir}: {manifest.Count} items, model {checkpoint}");
