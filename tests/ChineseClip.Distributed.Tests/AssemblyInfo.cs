// The collectives' tests run ranks as threads that share torch's process-wide settings: run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
