"""The SSL paper's experiments on minicaffe: `python -m minicaffe.experiments NAME [--quick]`.

    lenet          Tables 1-2, Fig. 3: dense baseline -> SSL (filters + channels; filter
                   shapes) from its weights -> compact -> fine-tune; the closing table with
                   measured speedups (the project's main job)
    lenet-tradeoff the error vs conv FLOPs curve of a lambda sweep, baseline marked
    mlp            Fig. 4: neurons per layer and the input-pixel connection map
    convnet        Table 3: row / column sparsity and per-layer speedups of the CIFAR-10 ConvNet
    resnet-depth   Fig. 6: error vs depth of ResNet-20 under depth regularisation
    alexnet-speed  Table 4, Fig. 7c: dense vs compacted vs CSR on AlexNet's layer shapes
    l1-vs-ssl      an L1-regularised net (CSR inference) vs an SSL net (compacted inference)
    budget         budget-driven SSL (no lambda): the CIFAR-10 quick net and ResNet-20 at 50%
                   of the conv FLOPs, three data orders each

Each writes `results/<name>/<name>.md` (tables with the data, schedule and machine stated),
`<name>.json` and PNG figures. `--quick` shortens every schedule for a smoke test.
"""
EXPERIMENTS = {
    "lenet": "minicaffe.experiments.lenet",
    "lenet-tradeoff": "minicaffe.experiments.lenet_tradeoff",
    "mlp": "minicaffe.experiments.mlp",
    "convnet": "minicaffe.experiments.convnet",
    "resnet-depth": "minicaffe.experiments.resnet_depth",
    "alexnet-speed": "minicaffe.experiments.alexnet_speed",
    "l1-vs-ssl": "minicaffe.experiments.l1_vs_ssl",
    "budget": "minicaffe.experiments.budget",
}
