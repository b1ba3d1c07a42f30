// The device switches of the training options (device, tf32, sdpa_backend) turned into libtorch settings, in one place
// for the trainer and `cnclip bench gpu`.
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Training;

/// <summary>The device a run names is not on this machine (no CUDA, or fewer GPUs). A NotSupportedException, so a
/// cluster worker reports it as final rather than retrying.</summary>
public sealed class DeviceUnavailableException(string message) : NotSupportedException(message);

public static class DeviceSettings
{
    /// <summary>The device <paramref name="text"/> names (cpu, cuda, cuda:N), after checking that it is there.</summary>
    public static Device Resolve(string text)
    {
        if (!TrainOptions.TryParseDevice(text, out Device device)) throw new ArgumentException($"device '{text}' is not cpu, cuda or cuda:N");
        if (device.type != DeviceType.CUDA) return device;
        if (!cuda.is_available())
            throw new DeviceUnavailableException($"device '{text}': no CUDA device (torch.cuda.is_available() is false with libtorch {string.Join(", ", Model.Runtime.TorchNative.MappedLibtorch())})");
        int count = cuda.device_count();
        if (device.index >= count) throw new DeviceUnavailableException($"device '{text}': only {count} CUDA device(s) here");
        return device;
    }

    /// <summary>What a worker set to "auto" trains on: "cuda:<paramref name="index"/>" when libtorch sees more than
    /// <paramref name="index"/> CUDA devices, else "cpu" (no GPU, or a CPU-only libtorch).</summary>
    public static string Auto(int index) =>
        index >= 0 && cuda.is_available() && cuda.device_count() > index ? $"cuda:{index}" : "cpu";

    /// <summary>Process-wide CUDA switches: TF32 for float32 matrix products and convolutions, and which
    /// scaled_dot_product_attention kernels libtorch may pick.</summary>
    public static void ApplyCudaSwitches(bool tf32, string sdpaBackend)
    {
        backends.cuda.matmul.allow_tf32 = tf32;
        backends.cudnn.allow_tf32 = tf32;
        backends.cuda.enable_flash_sdp(sdpaBackend != "math");
        backends.cuda.enable_math_sdp(sdpaBackend != "flash");
    }
}
