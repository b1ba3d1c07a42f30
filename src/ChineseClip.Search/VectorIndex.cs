// The vectors of one target (images or texts) of a collection: exact search as one matrix product over all of them
// (libtorch's BLAS), and the HNSW index for approximate search.
using TorchSharp;
using static TorchSharp.torch;

namespace ChineseClip.Search;

/// <summary>One search result: the item id and its cosine similarity with the query.</summary>
public readonly record struct SearchHit(long Id, float Score);

public sealed class VectorIndex : IDisposable
{
    readonly Tensor _matrix;
    readonly long[] _ids;

    /// <param name="matrix">[count, dimension] L2-normalised rows; the index takes ownership.</param>
    public VectorIndex(long[] ids, Tensor matrix, HnswIndex? hnsw)
    {
        if (matrix.ndim != 2 || matrix.shape[0] != ids.Length)
            throw new ArgumentException($"expected a [{ids.Length}, D] matrix, got [{string.Join(", ", matrix.shape)}]", nameof(matrix));
        _ids = ids;
        _matrix = matrix;
        Hnsw = hnsw;
    }

    /// <summary>An index over row-major <paramref name="rows"/> ([ids.Length, dimension]).</summary>
    public static VectorIndex FromRows(long[] ids, ReadOnlySpan<float> rows, int dimension, HnswIndex? hnsw)
    {
        if (rows.Length != ids.Length * dimension) throw new ArgumentException($"{rows.Length} floats are not {ids.Length} rows of {dimension}", nameof(rows));
        Tensor matrix = empty(ids.Length, dimension);
        if (rows.Length > 0) matrix.data<float>().CopyFrom(rows, 0, 0);
        return new VectorIndex(ids, matrix, hnsw);
    }

    public IReadOnlyList<long> Ids => _ids;
    public int Count => _ids.Length;
    public int Dimension => (int)_matrix.shape[1];
    public HnswIndex? Hnsw { get; }

    /// <summary>Row <paramref name="row"/> as a new array.</summary>
    public float[] Row(int row)
    {
        var v = new float[Dimension];
        _matrix.data<float>().CopyTo(v, 0, (long)row * Dimension);
        return v;
    }

    /// <summary>All rows, row-major, in id order of <see cref="Ids"/>.</summary>
    public void CopyRows(Span<float> destination)
    {
        if (Count > 0) _matrix.data<float>().CopyTo(destination, 0, 0); // an empty tensor's accessor refuses index 0
    }

    /// <summary>The k best items for one query: exactly (a matrix product over every vector), or through the HNSW
    /// index when there is one and <paramref name="exact"/> is false.</summary>
    public SearchHit[] Search(float[] query, int k, bool exact)
    {
        if (query.Length != Dimension) throw new ArgumentException($"a query of {query.Length} values for {Dimension}-d vectors", nameof(query));
        if (Count == 0 || k < 1) return [];
        if (!exact && Hnsw is not null)
        {
            var (keys, scores) = Hnsw.Search(query, Math.Min(k, Count));
            return keys.Select((key, i) => new SearchHit(key, scores[i])).ToArray();
        }
        return SearchExact(query, 1, k)[0];
    }

    /// <summary>Exact top-k of <paramref name="count"/> queries (row-major) at once: one BLAS matrix product per chunk of queries.</summary>
    public SearchHit[][] SearchExact(float[] queries, int count, int k)
    {
        int kk = Math.Min(k, Count);
        var results = new SearchHit[count][];
        const int chunk = 64; // bounds the [chunk, count] score matrix
        for (int start = 0; start < count; start += chunk)
        {
            int n = Math.Min(chunk, count - start);
            using var scope = NewDisposeScope();
            Tensor q = tensor(queries.AsSpan(start * Dimension, n * Dimension).ToArray(), [n, Dimension]);
            var (values, indexes) = q.matmul(_matrix.t()).topk(kk, dim: 1);
            float[] v = values.contiguous().data<float>().ToArray();
            long[] ix = indexes.contiguous().data<long>().ToArray();
            for (int i = 0; i < n; i++)
            {
                var hits = new SearchHit[kk];
                for (int j = 0; j < kk; j++) hits[j] = new SearchHit(_ids[ix[i * kk + j]], v[i * kk + j]);
                results[start + i] = hits;
            }
        }
        return results;
    }

    public void Dispose()
    {
        _matrix.Dispose();
        Hnsw?.Dispose();
    }
}
