// libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0, libturbojpeg.so.0), loaded on first use, for decoding large
// JPEGs scaled down by 1/2, 1/4 or 1/8 inside the IDCT: far less work than decoding every pixel and resizing them all.
// This is what Pillow's Image.draft does with libjpeg's scale_num/scale_denom.
using System.Runtime.InteropServices;

namespace ChineseClip.Model.Imaging;

/// <summary>The TurboJPEG library is not installed; the message is one line naming the package.</summary>
public sealed class TurboJpegMissingException(string message, Exception? inner = null) : Exception(message, inner);

internal static unsafe class TurboJpeg
{
    /// <summary>The shared library's name; tests point it at a file that is not there.</summary>
    internal static string LibraryName { get; set; } = "libturbojpeg.so.0";

    const int PixelFormatRgbx = 2;    // TJPF_RGBX: R, G, B and an unused fourth byte per pixel (gray comes out as R=G=B)
    const int ColorspaceCmyk = 3;     // TJCS_CMYK
    const int ColorspaceYcck = 4;     // TJCS_YCCK
    const int ErrorWarning = 0;       // TJERR_WARNING: the image was decoded; libjpeg only complained

    static readonly Lock Loading = new();
    static Api? _api;
    static string? _loadedName;

    sealed class Api
    {
        public required delegate* unmanaged<nint> InitDecompress;
        public required delegate* unmanaged<nint, byte*, nuint, int*, int*, int*, int*, int> DecompressHeader3;
        public required delegate* unmanaged<nint, byte*, nuint, byte*, int, int, int, int, int, int> Decompress2;
        public required delegate* unmanaged<nint, int> Destroy;
        public required delegate* unmanaged<nint, byte*> GetErrorStr2;
        public required delegate* unmanaged<nint, int> GetErrorCode;
    }

    /// <summary>Loads the library (once per name), or throws TurboJpegMissingException.</summary>
    public static void EnsureLoaded() => Load();

    static Api Load()
    {
        lock (Loading)
        {
            if (_api != null && _loadedName == LibraryName) return _api;
            string name = LibraryName;
            if (!NativeLibrary.TryLoad(name, out nint library))
                throw new TurboJpegMissingException($"scaled JPEG decoding needs libjpeg-turbo's TurboJPEG library ({name} not found): apt-get install libturbojpeg0");
            try
            {
                _api = new Api
                {
                    InitDecompress = (delegate* unmanaged<nint>)NativeLibrary.GetExport(library, "tjInitDecompress"),
                    DecompressHeader3 = (delegate* unmanaged<nint, byte*, nuint, int*, int*, int*, int*, int>)NativeLibrary.GetExport(library, "tjDecompressHeader3"),
                    Decompress2 = (delegate* unmanaged<nint, byte*, nuint, byte*, int, int, int, int, int, int>)NativeLibrary.GetExport(library, "tjDecompress2"),
                    Destroy = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, "tjDestroy"),
                    GetErrorStr2 = (delegate* unmanaged<nint, byte*>)NativeLibrary.GetExport(library, "tjGetErrorStr2"),
                    GetErrorCode = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, "tjGetErrorCode"),
                };
            }
            catch (EntryPointNotFoundException e)
            {
                throw new TurboJpegMissingException($"{name} lacks the TurboJPEG 2.x API ({e.Message}): apt-get install libturbojpeg0", e);
            }
            _loadedName = name;
            return _api;
        }
    }

    /// <summary>The largest reduction (8, 4 or 2) that keeps both sides at least <paramref name="resolution"/>, or 1
    /// when there is none. Pillow's JpegImageFile.draft chooses the same way.</summary>
    public static int ScaleFor(int width, int height, int resolution)
    {
        int room = Math.Min(width / resolution, height / resolution);
        return room >= 8 ? 8 : room >= 4 ? 4 : room >= 2 ? 2 : 1;
    }

    /// <summary>The JPEG decoded at 1/<paramref name="scale"/> (each side rounded up, as libjpeg does) into rented
    /// 4-byte pixels, or null when the image is CMYK or YCCK (left to the exact path).</summary>
    public static ScaledJpeg? Decode(ReadOnlySpan<byte> jpeg, int scale)
    {
        Api api = Load();
        nint handle = api.InitDecompress();
        if (handle == 0) throw new OutOfMemoryException("tjInitDecompress failed");
        try
        {
            fixed (byte* source = jpeg)
            {
                int width, height, subsampling, colorspace;
                if (api.DecompressHeader3(handle, source, (nuint)jpeg.Length, &width, &height, &subsampling, &colorspace) != 0)
                    throw Failure(api, handle);
                if (colorspace is ColorspaceCmyk or ColorspaceYcck) return null;
                int scaledWidth = (width + scale - 1) / scale, scaledHeight = (height + scale - 1) / scale;
                var result = new ScaledJpeg(scaledWidth, scaledHeight, scale);
                fixed (byte* pixels = result.Bytes)
                {
                    // TurboJPEG picks the scaling factor whose output fits width x height: exactly 1/scale here.
                    if (api.Decompress2(handle, source, (nuint)jpeg.Length, pixels, scaledWidth, 0, scaledHeight, PixelFormatRgbx, 0) != 0
                        && api.GetErrorCode(handle) != ErrorWarning)
                    {
                        result.Dispose();
                        throw Failure(api, handle);
                    }
                }
                return result;
            }
        }
        finally
        {
            api.Destroy(handle);
        }
    }

    static InvalidImageException Failure(Api api, nint handle) =>
        new($"corrupt JPEG image: {Marshal.PtrToStringUTF8((nint)api.GetErrorStr2(handle))}");
}

internal sealed class ScaledJpeg(int width, int height, int scale) : IDisposable
{
    readonly byte[] _rented = System.Buffers.ArrayPool<byte>.Shared.Rent(width * height * 4);

    public int Width { get; } = width;
    public int Height { get; } = height;
    /// <summary>The reduction the decoder applied: 2, 4 or 8.</summary>
    public int Scale { get; } = scale;
    public Span<byte> Bytes => _rented.AsSpan(0, Width * Height * 4);

    public void Dispose() => System.Buffers.ArrayPool<byte>.Shared.Return(_rented);
}
