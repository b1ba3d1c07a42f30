using ChineseClip.Model.Runtime;

namespace ChineseClip.Model.Tests;

public class MklCpuPathTests
{
    [Fact]
    public void The_answer_is_found_where_MKL_reads_it()
    {
        MklCpuPath.Apply(); // as a program would first: libtorch loaded, MKL's answer as the rule sets it
        // 7 is no answer cpuid gives (MKL caches 0 or 1): seeing it come back from MKL's own function proves the
        // address was decoded right. The earlier value goes back afterwards.
        Assert.Null(MklCpuPath.SetAnswer(7, out int previous));
        Assert.NotEqual(int.MinValue, previous);
        int restore = previous >= 0 ? previous : MklCpuPath.CpuVendor() == "GenuineIntel" ? 1 : 0;
        Assert.Null(MklCpuPath.SetAnswer(restore, out int seven));
        Assert.Equal(7, seven);
    }
}
