namespace ChineseClip.Model.Imaging;

/// <summary>An image that cannot be used: unknown format, corrupt or truncated data, or too many pixels. The message is
/// one line; the caller adds where the image came from.</summary>
public sealed class InvalidImageException(string message, Exception? inner = null) : Exception(message, inner);
