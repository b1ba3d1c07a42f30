using System.Buffers.Binary;
using System.Text;

namespace ChineseClip.Model.Checkpoints;

/// <summary>
/// Writes a zip of uncompressed entries whose data starts on 64-byte boundaries, as torch's PyTorchStreamWriter does
/// (so torch can mmap storages): the padding goes into a local-header extra field with id "FB". Zip64 records are
/// added only when a size or offset needs them. Data is streamed once; the CRC is patched into the local header
/// afterwards, so the output stream must be seekable.
/// </summary>
internal sealed class StoredZipWriter(Stream output)
{
    const int Alignment = 64;
    const ushort PaddingExtraId = 0x4246; // "FB"
    const ushort DosDate1980 = 0x21; // 1980-01-01, fixed so that equal content gives equal files

    readonly List<(byte[] Name, long Offset, long Size, uint Crc)> _entries = new();

    /// <summary>Sizes and offsets from this value on use Zip64 fields; lowered only by tests.</summary>
    internal long Zip64Limit { get; init; } = uint.MaxValue;

    public void Add(string name, byte[] data) => Add(name, data.Length, s => s.Write(data));

    public void Add(string name, long size, Action<Stream> writeData)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        long offset = output.Position;
        bool zip64 = size >= Zip64Limit;
        int zip64Length = zip64 ? 20 : 0;
        int pad = (int)((Alignment - (offset + 30 + nameBytes.Length + zip64Length + 4) % Alignment) % Alignment);

        var header = new byte[30 + nameBytes.Length + zip64Length + 4 + pad];
        var h = header.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], (ushort)(zip64 ? 45 : 20));
        BinaryPrimitives.WriteUInt16LittleEndian(h[12..], DosDate1980);
        BinaryPrimitives.WriteUInt32LittleEndian(h[18..], zip64 ? uint.MaxValue : (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(h[22..], zip64 ? uint.MaxValue : (uint)size);
        BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)(zip64Length + 4 + pad));
        nameBytes.CopyTo(h[30..]);
        var extra = h[(30 + nameBytes.Length)..];
        if (zip64)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(extra, 1);
            BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], 16);
            BinaryPrimitives.WriteInt64LittleEndian(extra[4..], size);
            BinaryPrimitives.WriteInt64LittleEndian(extra[12..], size);
            extra = extra[20..];
        }
        BinaryPrimitives.WriteUInt16LittleEndian(extra, PaddingExtraId);
        BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)pad);
        extra[4..].Fill((byte)'Z');
        output.Write(header);

        var data = new CrcStream(output);
        writeData(data);
        if (data.Count != size) throw new InvalidOperationException($"zip entry {name}: wrote {data.Count} bytes, announced {size}");
        long end = output.Position;
        output.Position = offset + 14;
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, data.Crc);
        output.Write(crc);
        output.Position = end;
        _entries.Add((nameBytes, offset, size, data.Crc));
    }

    /// <summary>Writes the central directory; the archive is complete after this.</summary>
    public void Finish()
    {
        long cdStart = output.Position;
        var buffer = new MemoryStream();
        foreach (var (name, offset, size, crc) in _entries)
        {
            bool bigSize = size >= Zip64Limit, bigOffset = offset >= Zip64Limit;
            int zip64Length = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
            int extraLength = zip64Length > 0 ? 4 + zip64Length : 0;
            var e = new byte[46 + name.Length + extraLength];
            var s = e.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(s, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(s[4..], 45);
            BinaryPrimitives.WriteUInt16LittleEndian(s[6..], (ushort)(zip64Length > 0 ? 45 : 20));
            BinaryPrimitives.WriteUInt16LittleEndian(s[14..], DosDate1980);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], crc);
            BinaryPrimitives.WriteUInt32LittleEndian(s[20..], bigSize ? uint.MaxValue : (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(s[24..], bigSize ? uint.MaxValue : (uint)size);
            BinaryPrimitives.WriteUInt16LittleEndian(s[28..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(s[30..], (ushort)extraLength);
            BinaryPrimitives.WriteUInt32LittleEndian(s[42..], bigOffset ? uint.MaxValue : (uint)offset);
            name.CopyTo(s[46..]);
            if (zip64Length > 0)
            {
                var x = s[(46 + name.Length)..];
                BinaryPrimitives.WriteUInt16LittleEndian(x, 1);
                BinaryPrimitives.WriteUInt16LittleEndian(x[2..], (ushort)zip64Length);
                x = x[4..];
                if (bigSize)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(x, size);
                    BinaryPrimitives.WriteInt64LittleEndian(x[8..], size);
                    x = x[16..];
                }
                if (bigOffset) BinaryPrimitives.WriteInt64LittleEndian(x, offset);
            }
            buffer.Write(e);
        }
        long cdSize = buffer.Length;
        long count = _entries.Count;
        bool zip64End = count >= ushort.MaxValue || cdStart >= Zip64Limit || cdSize >= Zip64Limit;
        if (zip64End)
        {
            long recordOffset = cdStart + cdSize;
            var r = new byte[56 + 20];
            var s = r.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(s, 0x06064b50);
            BinaryPrimitives.WriteInt64LittleEndian(s[4..], 44);
            BinaryPrimitives.WriteUInt16LittleEndian(s[12..], 45);
            BinaryPrimitives.WriteUInt16LittleEndian(s[14..], 45);
            BinaryPrimitives.WriteInt64LittleEndian(s[24..], count);
            BinaryPrimitives.WriteInt64LittleEndian(s[32..], count);
            BinaryPrimitives.WriteInt64LittleEndian(s[40..], cdSize);
            BinaryPrimitives.WriteInt64LittleEndian(s[48..], cdStart);
            BinaryPrimitives.WriteUInt32LittleEndian(s[56..], 0x07064b50);
            BinaryPrimitives.WriteInt64LittleEndian(s[64..], recordOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(s[72..], 1);
            buffer.Write(r);
        }
        var end = new byte[22];
        var t = end.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(t, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(t[8..], zip64End ? ushort.MaxValue : (ushort)count);
        BinaryPrimitives.WriteUInt16LittleEndian(t[10..], zip64End ? ushort.MaxValue : (ushort)count);
        BinaryPrimitives.WriteUInt32LittleEndian(t[12..], zip64End ? uint.MaxValue : (uint)cdSize);
        BinaryPrimitives.WriteUInt32LittleEndian(t[16..], zip64End ? uint.MaxValue : (uint)cdStart);
        buffer.Write(end);
        buffer.Position = 0;
        buffer.CopyTo(output);
    }

    /// <summary>Passes writes through and keeps the zip CRC-32 (polynomial 0xEDB88320, slicing by 8) and the byte count.</summary>
    sealed class CrcStream(Stream inner) : Stream
    {
        static readonly uint[][] Table = BuildTable();
        uint _crc = uint.MaxValue;

        public long Count { get; private set; }

        public uint Crc => ~_crc;

        static uint[][] BuildTable()
        {
            var t = new uint[8][];
            for (int k = 0; k < 8; k++) t[k] = new uint[256];
            for (uint i = 0; i < 256; i++)
            {
                uint c = i;
                for (int b = 0; b < 8; b++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
                t[0][i] = c;
            }
            for (int i = 0; i < 256; i++)
                for (int k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
            return t;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            uint c = _crc;
            var p = buffer;
            while (p.Length >= 8)
            {
                uint lo = BinaryPrimitives.ReadUInt32LittleEndian(p) ^ c;
                uint hi = BinaryPrimitives.ReadUInt32LittleEndian(p[4..]);
                c = Table[7][lo & 0xFF] ^ Table[6][(lo >> 8) & 0xFF] ^ Table[5][(lo >> 16) & 0xFF] ^ Table[4][lo >> 24]
                    ^ Table[3][hi & 0xFF] ^ Table[2][(hi >> 8) & 0xFF] ^ Table[1][(hi >> 16) & 0xFF] ^ Table[0][hi >> 24];
                p = p[8..];
            }
            foreach (byte b in p) c = Table[0][(c ^ b) & 0xFF] ^ (c >> 8);
            _crc = c;
            Count += buffer.Length;
            inner.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Count;
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
