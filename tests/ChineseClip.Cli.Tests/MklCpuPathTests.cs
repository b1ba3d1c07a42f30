using System.Runtime.Intrinsics.X86;
using System.Text.Json;
using ChineseClip.Model.Runtime;

namespace ChineseClip.Cli.Tests;

// MKL's kernel choice is made once per process, so each case runs cnclip as its own process.
public class MklCpuPathTests
{
    static (string Status, string? Branch) Gemm(string setting)
    {
        var r = CliRunner.RunProcess(ChineseClip.Cli.Launching.LocalRanks.SelfStartInfo(),
            new Dictionary<string, string> { [MklCpuPath.Variable] = setting },
            "bench", "gemm", "--shapes", "64x64x64", "--threads", "1", "--repeats", "1");
        Assert.True(r.ExitCode == 0, r.Error);
        var json = JsonDocument.Parse(r.OutLines.Single(l => l.StartsWith('{'))).RootElement;
        return (json.GetProperty("mkl").GetString()!, json.GetProperty("mkl_branch").GetString());
    }

    [Fact]
    public void Forced_on_MKL_runs_one_of_its_Intel_branches_on_any_x86_CPU()
    {
        var (status, branch) = Gemm("1");
        Assert.StartsWith("MKL takes its Intel kernels (", status);
        Assert.EndsWith($", {MklCpuPath.Variable}=1)", status);
        Assert.NotNull(branch);
        Assert.NotEqual("AUTO", branch); // AUTO: MKL runs none of its Intel branches
    }

    [Fact]
    public void Auto_takes_the_Intel_branch_on_other_vendors_CPUs_with_AVX512_and_0_leaves_MKL_its_own_choice()
    {
        var off = Gemm("0");
        var auto = Gemm("auto");
        Assert.Equal($"MKL chooses its own kernels ({MklCpuPath.Variable}=0)", off.Status);
        string vendor = MklCpuPath.CpuVendor();
        if (vendor != "GenuineIntel" && Avx512F.IsSupported)
        {
            Assert.Equal($"MKL takes its Intel kernels ({vendor}, AVX-512)", auto.Status);
            Assert.StartsWith("AVX512", auto.Branch);
            Assert.Equal("AUTO", off.Branch);
        }
        else
        {
            Assert.StartsWith("MKL chooses its own kernels (", auto.Status);
            Assert.Equal(off.Branch, auto.Branch);
        }
    }

    [Fact]
    public void A_value_other_than_auto_0_or_1_is_a_one_line_error_at_start()
    {
        var r = CliRunner.RunProcess(ChineseClip.Cli.Launching.LocalRanks.SelfStartInfo(),
            new Dictionary<string, string> { [MklCpuPath.Variable] = "yes" }, "bench", "gemm", "--shapes", "8x8x8", "--threads", "1");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal($"cnclip: error: {MklCpuPath.Variable}=yes: expected auto, 0 or 1\n", r.Error);
        Assert.Equal("", r.Out);
    }
}
