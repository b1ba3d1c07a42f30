// Training tests seed torch's global generator and set its thread count, which are process-wide: run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
