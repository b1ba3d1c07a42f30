using ChineseClip.Model.Checkpoints;
using static ChineseClip.Model.Tests.Checkpoints.CheckpointTestKit;

namespace ChineseClip.Model.Tests.Checkpoints;

/// <summary>Crafted pickles that would run code under Python's pickle; all must be refused before anything is built.</summary>
public sealed class UnsafePickleTests : IDisposable
{
    readonly CheckpointTestKit _kit = new();

    string Marker => _kit.File("pwned");

    [Fact]
    public void Global_os_system_is_refused_naming_the_global_and_the_file_without_running_anything()
    {
        // protocol 2: GLOBAL 'os system', MARK, 'touch <marker>', BINPUT, TUPLE, REDUCE, STOP
        string path = _kit.TorchZip("global.pt", Pickle(0x80, 2, "cos\nsystem\n(", Str("touch " + Marker), "q", 0, "tR."));

        var e = Assert.Throws<UnsafePickleException>(() => OfficialCheckpoint.Load(path));

        Assert.Equal("os.system", e.Global);
        Assert.Contains("'os.system'", e.Message);
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public void Stack_global_whose_names_come_from_the_memo_is_refused()
    {
        // protocol 4 with a FRAME: 'builtins' and 'eval' are memoised, popped, fetched back with BINGET, then STACK_GLOBAL
        string code = $"open('{Marker}', 'w')";
        byte[] body = Pickle(
            0x8c, 8, "builtins", 0x94, 0x8c, 4, "eval", 0x94, "00", "h", 0, "h", 1, 0x93,
            Str(code), 0x85, "R.");
        string path = _kit.TorchZip("stack.pt", Pickle(0x80, 4, 0x95, BitConverter.GetBytes((long)body.Length), body));

        var e = Assert.Throws<UnsafePickleException>(() => OfficialCheckpoint.Load(path));

        Assert.Equal("builtins.eval", e.Global);
        Assert.Contains(path, e.Message);
    }

    [Theory]
    [InlineData("subprocess", "Popen")]
    [InlineData("__builtin__", "getattr")]
    [InlineData("builtins", "exec")]
    [InlineData("numpy.core.multiarray", "_reconstruct")]
    [InlineData("torch", "load")]
    [InlineData("torch._utils", "_rebuild_device_tensor_from_numpy")]
    [InlineData("collections", "defaultdict")]
    public void Any_global_outside_the_tensor_allowlist_is_refused(string module, string name)
    {
        string path = _kit.TorchZip("other.pt", Pickle(0x80, 2, $"c{module}\n{name}\n", Str("touch " + Marker), 0x85, "R."));

        var e = Assert.Throws<UnsafePickleException>(() => OfficialCheckpoint.Load(path));

        Assert.Equal($"{module}.{name}", e.Global);
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public void Refusal_comes_before_any_storage_of_an_earlier_tensor_is_read()
    {
        // A tensor whose storage entry does not exist, then os.system: reading storages first would fail differently.
        byte[] tensor = Pickle(
            "ctorch._utils\n_rebuild_tensor_v2\n((", Str("storage"), "ctorch\nFloatStorage\n", Str("0"), Str("cpu"), "K", 1, "tQ",
            "K", 0, "K", 1, 0x85, "K", 1, 0x85, 0x89, "}tR");
        string path = _kit.TorchZip("late.pt", Pickle(0x80, 2, "(", tensor, "cos\nsystem\n", Str("touch " + Marker), 0x85, "Rl."));

        var e = Assert.Throws<UnsafePickleException>(() => OfficialCheckpoint.Load(path));

        Assert.Equal("os.system", e.Global);
    }

    [Fact]
    public void Inst_and_extension_registry_opcodes_are_refused()
    {
        string inst = _kit.TorchZip("inst.pt", Pickle(0x80, 2, "(", Str("touch " + Marker), "ios\nsystem\n."));
        string ext = _kit.TorchZip("ext.pt", Pickle(0x80, 2, 0x82, 1, ")R."));

        Assert.Equal("os.system", Assert.Throws<UnsafePickleException>(() => OfficialCheckpoint.Load(inst)).Global);
        Assert.Equal("EXT1", Assert.Throws<UnsafePickleException>(() => OfficialCheckpoint.Load(ext)).Global);
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public void Allowed_globals_cannot_be_called_outside_their_role()
    {
        // A storage type is only a token inside a persistent id; calling it is malformed, not executed.
        string path = _kit.TorchZip("call.pt", Pickle(0x80, 2, "ctorch\nFloatStorage\n)R."));

        Assert.Throws<CheckpointFormatException>(() => OfficialCheckpoint.Load(path));
    }

    public void Dispose() => _kit.Dispose();
}
