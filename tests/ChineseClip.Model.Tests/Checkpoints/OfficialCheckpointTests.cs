using System.IO.Compression;
using ChineseClip.Model.Checkpoints;
using TorchSharp;
using static ChineseClip.Model.Tests.Checkpoints.CheckpointTestKit;
using static TorchSharp.torch;

namespace ChineseClip.Model.Tests.Checkpoints;

public sealed class OfficialCheckpointTests : IDisposable
{
    static readonly string Parity = SharedFiles.Path("fixtures", "official-tiny", "parity.pt");

    readonly CheckpointTestKit _kit = new();

    [Fact]
    public void Parity_checkpoint_loads_epoch_step_name_and_every_tensor_under_its_official_key()
    {
        var ck = OfficialCheckpoint.Load(Parity);

        Assert.Equal(3, ck.Epoch);
        Assert.Equal(735L, ck.Step);
        Assert.Equal("parity", ck.Name);
        Assert.Null(ck.Optimizer);
        Assert.Empty(ck.Extra);
        using var zip = ZipFile.OpenRead(Parity);
        Assert.Equal(zip.Entries.Count(e => e.FullName.StartsWith("parity/data/", StringComparison.Ordinal)), ck.StateDict.Count);
        Assert.Equal(71, ck.StateDict.Count);
        Assert.Equal(new[] { "text_projection", "logit_scale", "visual.class_embedding" }, ck.StateDict.Keys.Take(3));
        Assert.Equal("bert.encoder.layer.1.output.LayerNorm.bias", ck.StateDict.Keys.Last());
        Assert.DoesNotContain(ck.StateDict.Keys, k => k.StartsWith("module.", StringComparison.Ordinal));
        Assert.Equal(new long[] { 128, 64 }, ck.StateDict["text_projection"].shape);
        Assert.Empty(ck.StateDict["logit_scale"].shape);
        Assert.Equal(new long[] { 17, 128 }, ck.StateDict["visual.positional_embedding"].shape);
        Assert.Equal(new long[] { 128, 3, 16, 16 }, ck.StateDict["visual.conv1.weight"].shape);
        Assert.Equal(new long[] { 384, 128 }, ck.StateDict["visual.transformer.resblocks.0.attn.in_proj_weight"].shape);
        Assert.All(ck.StateDict.Values, t => Assert.Equal(ScalarType.Float32, t.dtype));
    }

    [Fact]
    public void Parity_tensor_values_equal_the_raw_storage_bytes_in_the_zip()
    {
        var ck = OfficialCheckpoint.Load(Parity);
        using var zip = ZipFile.OpenRead(Parity);

        byte[] raw = ReadEntry(zip, "parity/data/0"); // module.text_projection, FloatStorage of 8192 elements
        Assert.Equal(raw, Bytes(ck.StateDict["text_projection"]));
        Assert.Equal(4f, BitConverter.ToSingle(ReadEntry(zip, "parity/data/1"))); // module.logit_scale
        Assert.Equal(4f, ck.StateDict["logit_scale"].item<float>());
    }

    [Fact]
    public void Saved_checkpoint_loads_back_bitwise_with_fp16_bf16_and_strided_or_offset_views()
    {
        torch.manual_seed(1);
        using var matrix = torch.randn(5, 7);
        var stateDict = new Dictionary<string, Tensor>
        {
            ["visual.proj"] = torch.randn(6, 4),
            ["half"] = torch.randn(3, 5).to(ScalarType.Float16),
            ["bfloat"] = torch.randn(9).to(ScalarType.BFloat16),
            ["transposed"] = matrix.t(),
            ["offset_rows"] = matrix.narrow(0, 2, 3),
            ["strided_columns"] = matrix[.., TensorIndex.Slice(1, null, 3)],
            ["scalar"] = torch.tensor(4.6052f),
            ["empty"] = torch.zeros(0, 3),
            ["steps"] = torch.tensor(new long[] { 1, -2, long.MaxValue }),
            ["mask"] = torch.tensor(new[] { true, false, true }),
        };
        string path = _kit.File("epoch_latest.pt");

        OfficialCheckpoint.Save(path, stateDict, epoch: 1, step: 2, name: "run");
        var ck = OfficialCheckpoint.Load(path);

        Assert.Equal((1, 2L, "run"), (ck.Epoch!.Value, ck.Step!.Value, ck.Name!));
        Assert.Null(ck.Optimizer);
        AssertStateDictsBitwiseEqual(stateDict, ck.StateDict);
    }

    [Fact]
    public void Optimizer_state_round_trips_as_nested_dicts_lists_tuples_numbers_and_tensors()
    {
        torch.manual_seed(2);
        var optimizer = new Dictionary<object, object?>
        {
            ["state"] = new Dictionary<object, object?>
            {
                [0L] = new Dictionary<object, object?> { ["step"] = torch.tensor(3f), ["exp_avg"] = torch.randn(2, 3), ["exp_avg_sq"] = torch.rand(2, 3) },
                [1L] = new Dictionary<object, object?> { ["step"] = torch.tensor(3f), ["exp_avg"] = torch.randn(2), ["exp_avg_sq"] = torch.rand(2) },
            },
            ["param_groups"] = new List<object?>
            {
                new Dictionary<object, object?>
                {
                    ["lr"] = 5e-5, ["betas"] = new object?[] { 0.9, 0.98 }, ["eps"] = 1e-6, ["weight_decay"] = 0.001,
                    ["amsgrad"] = false, ["foreach"] = null, ["params"] = new List<object?> { 0L, 1L },
                },
            },
            ["numbers"] = new List<object?> { -1L, -300L, 70000L, -70000L, 1L << 40, long.MinValue, long.MaxValue, double.NegativeInfinity, "中文 text" },
            ["long_tuple"] = new object?[] { 1L, 2L, 3L, 4L, 5L },
        };
        string path = _kit.File("with_optimizer.pt");

        OfficialCheckpoint.Save(path, new Dictionary<string, Tensor> { ["logit_scale"] = torch.tensor(1f) }, 0, 10, "resume", optimizer);
        var loaded = OfficialCheckpoint.Load(path);

        AssertSameValue(optimizer, loaded.Optimizer);
        var withoutOptimizer = OfficialCheckpoint.Load(path, loadOptimizer: false);
        Assert.Null(withoutOptimizer.Optimizer);
    }

    [Fact]
    public void Plain_state_dict_file_loads_with_module_prefix_stripped_and_bert_pooler_dropped()
    {
        string path = _kit.File("plain.pt");
        var plain = new Dictionary<string, Tensor>
        {
            ["module.logit_scale"] = torch.tensor(2f),
            ["bert.pooler.dense.bias"] = torch.zeros(4),
            ["text_projection"] = torch.ones(4, 2),
        };
        TorchArchiveWriter.Save(path, new TorchArchiveWriter.OrderedDictValue(plain));

        var ck = OfficialCheckpoint.Load(path);

        Assert.Equal(new[] { "logit_scale", "text_projection" }, ck.StateDict.Keys);
        Assert.Null(ck.Epoch);
        Assert.Null(ck.Name);
        Assert.Equal(2f, ck.StateDict["logit_scale"].item<float>());
    }

    [Fact]
    public void Views_of_one_shared_storage_load_as_views_of_one_storage_with_their_offsets_and_strides()
    {
        using Scalar elements = 24;
        using var storage = torch.arange(elements, dtype: ScalarType.Float32);
        var views = new Dictionary<string, object>
        {
            ["whole"] = new TorchArchiveWriter.StorageView(storage, 0, [4, 6], [6, 1]),
            ["transposed"] = new TorchArchiveWriter.StorageView(storage, 0, [6, 4], [1, 6]),
            ["block"] = new TorchArchiveWriter.StorageView(storage, 8, [3, 2], [6, 1]),
        };
        string path = _kit.File("shared.pt");
        TorchArchiveWriter.Save(path, new Dictionary<string, object?> { ["state_dict"] = views });

        var sd = OfficialCheckpoint.Load(path).StateDict;

        using (var zip = ZipFile.OpenRead(path)) Assert.Single(zip.Entries, e => e.FullName.Contains("/data/", StringComparison.Ordinal));
        AssertBitwiseEqual(storage.as_strided([4, 6], [6, 1]), sd["whole"]);
        AssertBitwiseEqual(storage.as_strided([6, 4], [1, 6]), sd["transposed"]);
        AssertBitwiseEqual(storage.as_strided([3, 2], [6, 1], 8), sd["block"]);
        sd["whole"][1, 2] = torch.tensor(-1f); // storage element 8, seen by every view as in torch
        Assert.Equal(-1f, sd["transposed"][2, 1].item<float>());
        Assert.Equal(-1f, sd["block"][0, 0].item<float>());
    }

    [Fact]
    public void View_reaching_outside_its_storage_is_refused()
    {
        using Scalar elements = 6;
        using var storage = torch.arange(elements, dtype: ScalarType.Float32);
        string path = _kit.File("outside.pt");
        TorchArchiveWriter.Save(path, new Dictionary<string, object?> { ["w"] = new TorchArchiveWriter.StorageView(storage, 4, [2, 2], [2, 1]) });

        var e = Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(path));

        Assert.Contains(path, e.Message);
        Assert.Contains("outside storage", e.Message);
    }

    [Fact]
    public void Archive_with_zip64_records_loads_back()
    {
        string path = _kit.File("zip64.pt");
        var sd = new Dictionary<string, Tensor> { ["a"] = torch.randn(3, 3), ["b"] = torch.ones(2) };
        TorchArchiveWriter.Save(path, new Dictionary<string, object?> { ["state_dict"] = new TorchArchiveWriter.OrderedDictValue(sd) }, zip64Limit: 0);

        AssertStateDictsBitwiseEqual(sd, OfficialCheckpoint.Load(path).StateDict);
    }

    [Fact]
    public void Saving_twice_replaces_the_file_and_leaves_no_temporary_file()
    {
        string path = _kit.File("epoch1.pt");
        OfficialCheckpoint.Save(path, new Dictionary<string, Tensor> { ["a"] = torch.zeros(2) }, 1, 1, "x");
        OfficialCheckpoint.Save(path, new Dictionary<string, Tensor> { ["a"] = torch.ones(2) }, 2, 2, "x");

        Assert.Equal(new[] { path }, Directory.GetFiles(_kit.Folder));
        Assert.Equal(2, OfficialCheckpoint.Load(path).Epoch);
    }

    [Fact]
    public void Truncated_checkpoint_is_refused_with_the_path_in_a_one_line_message()
    {
        byte[] bytes = File.ReadAllBytes(Parity);
        string path = _kit.File("truncated.pt");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

        var e = Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(path));

        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void File_that_is_not_a_zip_is_refused_naming_the_file_and_legacy_pickles_are_named_as_such()
    {
        string text = _kit.File("notes.pt");
        File.WriteAllText(text, "not a checkpoint");
        string legacy = _kit.File("legacy.pt");
        File.WriteAllBytes(legacy, [0x80, 0x02, 0x8a, 0x0a]);

        Assert.Contains(text, Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(text)).Message);
        var e = Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(legacy));
        Assert.Contains(legacy, e.Message);
        Assert.Contains("legacy", e.Message);
    }

    [Fact]
    public void Missing_storage_entry_is_refused_naming_the_file_and_the_entry()
    {
        string path = _kit.File("missing.pt");
        OfficialCheckpoint.Save(path, new Dictionary<string, Tensor> { ["a"] = torch.zeros(2) }, 1, 1, "x");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update)) zip.GetEntry("missing/data/0")!.Delete();

        var e = Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(path));

        Assert.Contains(path, e.Message);
        Assert.Contains("missing/data/0", e.Message);
    }

    [Fact]
    public void Storage_entry_shorter_than_its_tensor_is_refused_naming_the_entry()
    {
        string path = _kit.File("short.pt");
        OfficialCheckpoint.Save(path, new Dictionary<string, Tensor> { ["a"] = torch.zeros(4) }, 1, 1, "x");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
        {
            zip.GetEntry("short/data/0")!.Delete();
            using var s = zip.CreateEntry("short/data/0").Open();
            s.Write(new byte[8]);
        }

        var e = Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(path));

        Assert.Contains("short/data/0", e.Message);
    }

    [Fact]
    public void Torch_model_state_dict_with_metadata_build_is_read_as_a_plain_dict()
    {
        // collections.OrderedDict() + SETITEMS, then BUILD {'_metadata': OrderedDict(...)} as torch writes module.state_dict()
        byte[] pickle = Pickle(0x80, 2, "ccollections\nOrderedDict\nq", 0, ")R(", Str("a"), "K", 1, "u}", Str("_metadata"), "h", 0, ")Rsb.");

        var value = RestrictedUnpickler.Load(pickle, "test");

        var dict = Assert.IsType<Dictionary<object, object?>>(value);
        Assert.Equal(1L, Assert.Single(dict).Value);
    }

    static byte[] ReadEntry(ZipArchive zip, string name)
    {
        var entry = zip.GetEntry(name)!;
        using var s = entry.Open();
        var bytes = new byte[entry.Length];
        s.ReadExactly(bytes);
        return bytes;
    }

    static void AssertSameValue(object? expected, object? actual)
    {
        switch (expected)
        {
            case Tensor t:
                AssertBitwiseEqual(t, Assert.IsType<Tensor>(actual, exactMatch: false));
                break;
            case Dictionary<object, object?> d:
                var ad = Assert.IsType<Dictionary<object, object?>>(actual);
                Assert.Equal(d.Keys, ad.Keys);
                foreach (var (k, v) in d) AssertSameValue(v, ad[k]);
                break;
            case object?[] tuple:
                var at = Assert.IsType<object?[]>(actual);
                Assert.Equal(tuple.Length, at.Length);
                for (int i = 0; i < tuple.Length; i++) AssertSameValue(tuple[i], at[i]);
                break;
            case List<object?> list:
                var al = Assert.IsType<List<object?>>(actual);
                Assert.Equal(list.Count, al.Count);
                for (int i = 0; i < list.Count; i++) AssertSameValue(list[i], al[i]);
                break;
            default:
                Assert.Equal(expected, actual);
                break;
        }
    }

    public void Dispose() => _kit.Dispose();
}
