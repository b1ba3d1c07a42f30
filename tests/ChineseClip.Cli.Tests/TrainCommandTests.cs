using ChineseClip.Model.Checkpoints;
using TorchSharp;

namespace ChineseClip.Cli.Tests;

public class TrainCommandTests
{
    // A tiny ViT (no BatchNorm, no dropout) on the demo vocabulary: splitting a global batch over ranks then changes
    // nothing but the order of float additions.
    const string Arch = """
        {"embed_dim": 32, "image_resolution": 32, "vision_layers": 1, "vision_width": 64, "vision_patch_size": 16,
         "vocab_size": 58, "text_hidden_size": 64, "text_num_hidden_layers": 1, "text_num_attention_heads": 2,
         "text_intermediate_size": 128, "text_max_position_embeddings": 64, "text_type_vocab_size": 2,
         "text_hidden_dropout_prob": 0.0, "text_attention_probs_dropout_prob": 0.0}
        """;

    static string Config(string dir, string name, int batchSize) =>
        $"""
        train_data: {Path.Combine(dir, "stage3-private")}
        arch: {Path.Combine(dir, "vit-tiny.json")}
        vocab: {Path.Combine(dir, "vocab.txt")}
        logs: {Path.Combine(dir, "runs")}
        name: {name}
        batch_size: {batchSize}
        context_length: 16
        lr: 0.001
        warmup: 2
        max_epochs: 1
        log_interval: 1
        threads: 2
        """;

    [Fact]
    public void A_cuda_device_on_a_machine_without_one_is_a_one_line_error()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-nocuda").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "vit-tiny.json"), Arch);
            File.WriteAllText(Path.Combine(dir, "cuda.yaml"), Config(dir, "cuda", batchSize: 8) + "\ndevice: cuda\n");
            var r = CliRunner.RunProcess("train", "--config", Path.Combine(dir, "cuda.yaml"));
            Assert.Equal(ExitCodes.BadInput, r.ExitCode);
            string line = Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("cnclip: error: device 'cuda': no CUDA device (torch.cuda.is_available() is false with libtorch /", line);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Two_worker_processes_reach_the_weights_of_one_process_with_the_same_global_batch()
    {
        string dir = Directory.CreateTempSubdirectory("cnclip-nproc").FullName;
        try
        {
            Assert.Equal(0, CliRunner.Run("make-demo-data", "--output", dir).ExitCode);
            File.WriteAllText(Path.Combine(dir, "vit-tiny.json"), Arch);
            File.WriteAllText(Path.Combine(dir, "one.yaml"), Config(dir, "one", batchSize: 64));
            File.WriteAllText(Path.Combine(dir, "two.yaml"), Config(dir, "two", batchSize: 32));

            var one = CliRunner.RunProcess("train", "--config", Path.Combine(dir, "one.yaml"));
            Assert.True(one.ExitCode == 0, one.Error);
            var two = CliRunner.RunProcess("train", "--config", Path.Combine(dir, "two.yaml"), "--nproc", "2");
            Assert.True(two.ExitCode == 0, two.Error + two.Out);

            // Rank 0 reports the global batch; rank 1 wrote its own log and no checkpoints of its own.
            Assert.Contains("starting 2 worker processes", two.Out);
            Assert.Contains("Global Batch Size: 64", two.Out);
            Assert.Contains("rank 1 of 2", File.ReadAllText(Path.Combine(dir, "runs", "two", "rank1.log")));

            var single = OfficialCheckpoint.Load(Path.Combine(dir, "runs", "one", "checkpoints", "epoch1.pt"));
            var parallel = OfficialCheckpoint.Load(Path.Combine(dir, "runs", "two", "checkpoints", "epoch1.pt"));
            Assert.Equal(single.Step, parallel.Step);
            double worst = 0, moved = 0;
            torch.manual_seed(123);
            using var initial = new ChineseClip.Model.ClipModel(ChineseClip.Model.ClipConfig.FromJson("vit-tiny", Arch));
            var start = initial.state_dict();
            foreach (var (key, expected) in single.StateDict)
            {
                worst = Math.Max(worst, (expected - parallel.StateDict[key]).abs().max().item<float>());
                moved = Math.Max(moved, (expected - start[key]).abs().max().item<float>());
            }
            Assert.True(worst < 1e-4, $"largest weight difference between 1 and 2 processes: {worst}");
            Assert.True(moved > 1e-3, $"the weights barely moved ({moved}): the comparison proves nothing");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
