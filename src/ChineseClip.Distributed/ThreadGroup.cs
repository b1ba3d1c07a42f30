// Ranks as threads of one process sharing memory: the reference implementation of ICollectives that the process
// transports (gRPC ring, NCCL) are compared against, and what multi-rank tests run on. Each collective copies the
// ranks' inputs into a shared slot, meets at a barrier, then every rank computes the same result in rank order.
using ChineseClip.Training.Distributed;
using static TorchSharp.torch;

namespace ChineseClip.Distributed;

public sealed class ThreadGroup
{
    readonly Barrier _barrier;
    readonly float[]?[] _slots;
    readonly TimeSpan _timeout;

    public ThreadGroup(int worldSize, TimeSpan? timeout = null)
    {
        WorldSize = worldSize;
        _barrier = new Barrier(worldSize);
        _slots = new float[]?[worldSize];
        _timeout = timeout ?? TimeSpan.FromMinutes(5);
    }

    public int WorldSize { get; }

    public ICollectives Member(int rank) => new GroupMember(this, rank);

    void Meet(int rank)
    {
        if (!_barrier.SignalAndWait(_timeout))
            throw new TimeoutException($"rank {rank}: the other ranks did not reach the collective within {_timeout.TotalSeconds:F0} s");
    }

    sealed class GroupMember(ThreadGroup group, int rank) : ICollectives
    {
        public int Rank => rank;
        public int WorldSize => group.WorldSize;

        float[][] Exchange(Tensor t)
        {
            group._slots[rank] = t.detach().to(ScalarType.Float32).contiguous().data<float>().ToArray();
            group.Meet(rank);
            var all = group._slots.Select(s => s!).ToArray();
            group.Meet(rank); // nobody overwrites a slot before everyone has read it
            return all;
        }

        public void AllReduceSum(Tensor flat)
        {
            var all = Exchange(flat);
            var sum = new float[all[0].Length];
            foreach (var part in all) // rank order on every rank: the same float result everywhere
                for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
            using var _ = no_grad();
            using var result = tensor(sum, flat.shape);
            flat.copy_(result);
        }

        public Tensor[] AllGather(Tensor local)
        {
            var all = Exchange(local);
            return all.Select(a => tensor(a, local.shape).to(local.dtype)).ToArray();
        }

        public void Broadcast(Tensor t, int root)
        {
            var all = Exchange(t);
            using var _ = no_grad();
            using var result = tensor(all[root], t.shape).to(t.dtype);
            t.copy_(result);
        }

        public void Barrier() => group.Meet(rank);

        public void Dispose() { }
    }
}
