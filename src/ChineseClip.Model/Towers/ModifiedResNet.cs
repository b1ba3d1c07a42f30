// The RN50 image tower: OpenAI CLIP's ModifiedResNet (three-conv stem, anti-aliased strided blocks, attention
// pooling). Field names are the official state_dict keys under `visual.`.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ChineseClip.Model.Towers;

public sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;
    private readonly int stride;

    public Bottleneck(int inplanes, int planes, int stride) : base(nameof(Bottleneck))
    {
        this.stride = stride;
        conv1 = nn.Conv2d(inplanes, planes, 1, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        conv2 = nn.Conv2d(planes, planes, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        conv3 = nn.Conv2d(planes, planes * Expansion, 1, bias: false);
        bn3 = nn.BatchNorm2d(planes * Expansion);
        if (stride > 1 || inplanes != planes * Expansion)
        {
            // The official names: "-1" is a parameterless AvgPool2d, so the keys are downsample.0 and downsample.1.
            downsample = nn.Sequential(
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * Expansion, 1, stride: 1, bias: false)),
                ("1", nn.BatchNorm2d(planes * Expansion)));
        }
        RegisterComponents();
    }

    public BatchNorm2d LastNorm => bn3;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor output = F.relu(bn1.forward(conv1.forward(x)));
        output = F.relu(bn2.forward(conv2.forward(output)));
        if (stride > 1) output = F.avg_pool2d(output, stride);
        output = bn3.forward(conv3.forward(output));
        Tensor identity = downsample is null ? x : downsample.forward(x);
        return F.relu(Sum.Of(output, identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head attention of the mean token over the spatial tokens (separate q/k/v projections).</summary>
public sealed class AttentionPool2d : nn.Module<Tensor, Tensor>, IKernelChoices
{
    private readonly Parameter positional_embedding;
    private readonly Linear k_proj;
    private readonly Linear q_proj;
    private readonly Linear v_proj;
    private readonly Linear c_proj;
    private readonly int heads;

    public AttentionPool2d(int spacialDim, int embedDim, int heads, int outputDim) : base(nameof(AttentionPool2d))
    {
        this.heads = heads;
        using (Scalar root = Math.Sqrt(embedDim))
            positional_embedding = nn.Parameter(randn(spacialDim * spacialDim + 1, embedDim) / root);
        k_proj = nn.Linear(embedDim, embedDim);
        q_proj = nn.Linear(embedDim, embedDim);
        v_proj = nn.Linear(embedDim, embedDim);
        c_proj = nn.Linear(embedDim, outputDim);
        // The official CLIP initialisation of the pooling projections.
        using (no_grad())
        {
            double std = Math.Pow(embedDim, -0.5);
            foreach (var p in new[] { q_proj, k_proj, v_proj, c_proj }) nn.init.normal_(p.weight!, 0, std);
        }
        RegisterComponents();
    }

    public KernelChoices Kernels { get; set; } = KernelChoices.Default;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1];
        x = x.flatten(2).transpose(1, 2);                            // [N, HW, C]
        x = Sum.Of(cat([x.mean([1], keepdim: true), x], 1), positional_embedding.to(x.dtype));
        long l = x.shape[1], d = c / heads;
        Tensor q = Dense.Linear(q_proj, x.narrow(1, 0, 1), Kernels).view(n, 1, heads, d).transpose(1, 2);
        Tensor k = Dense.Linear(k_proj, x, Kernels).view(n, l, heads, d).transpose(1, 2);
        Tensor v = Dense.Linear(v_proj, x, Kernels).view(n, l, heads, d).transpose(1, 2);
        Tensor attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, c);
        return c_proj.forward(attended).MoveToOuterDisposeScope();
    }
}

public sealed class ModifiedResNet : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly AttentionPool2d attnpool;

    public ModifiedResNet(IReadOnlyList<int> layers, int outputDim, int heads, int resolution, int width)
        : base(nameof(ModifiedResNet))
    {
        conv1 = nn.Conv2d(3, width / 2, 3, stride: 2, padding: 1, bias: false);
        bn1 = nn.BatchNorm2d(width / 2);
        conv2 = nn.Conv2d(width / 2, width / 2, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(width / 2);
        conv3 = nn.Conv2d(width / 2, width, 3, padding: 1, bias: false);
        bn3 = nn.BatchNorm2d(width);
        int inplanes = width;
        Sequential MakeLayer(int planes, int blocks, int stride)
        {
            var list = new List<nn.Module<Tensor, Tensor>> { new Bottleneck(inplanes, planes, stride) };
            inplanes = planes * Bottleneck.Expansion;
            for (int i = 1; i < blocks; i++) list.Add(new Bottleneck(inplanes, planes, 1));
            return nn.Sequential(list);
        }
        layer1 = MakeLayer(width, layers[0], 1);
        layer2 = MakeLayer(width * 2, layers[1], 2);
        layer3 = MakeLayer(width * 4, layers[2], 2);
        layer4 = MakeLayer(width * 8, layers[3], 2);
        attnpool = new AttentionPool2d(resolution / 32, width * 32, heads, outputDim);
        // Official CLIP zero-initialises the last BatchNorm of every block so each starts as an identity.
        using (no_grad())
        {
            foreach (var block in new[] { layer1, layer2, layer3, layer4 }.SelectMany(l => l.children()).OfType<Bottleneck>())
                nn.init.zeros_(block.LastNorm.weight!);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x.to(conv1.weight!.dtype);
        x = F.relu(bn1.forward(conv1.forward(x)));
        x = F.relu(bn2.forward(conv2.forward(x)));
        x = F.relu(bn3.forward(conv3.forward(x)));
        x = F.avg_pool2d(x, 2);
        x = layer4.forward(layer3.forward(layer2.forward(layer1.forward(x))));
        return attnpool.forward(x).MoveToOuterDisposeScope();
    }
}
