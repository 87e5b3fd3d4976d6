"""The small CIFAR/TinyImageNet networks of the KD literature (CRD, mdistiller, R2KD), registered with timm.

Written from the architectures' descriptions (He et al. 2016; Zagoruyko & Komodakis 2016; Simonyan & Zisserman
2015; Sandler et al. 2018; Ma et al. 2018) in their CIFAR form: 3x3 stem without down-sampling, global average
pooling, so the same network runs at 32 px (CIFAR) and 64 px (TinyImageNet).

After ``import r2kd_hf``, ``timm.create_model("cifar_resnet8x4", num_classes=100)`` works, and the models save,
push and load through ``TimmWrapperForImageClassification`` like any timm model.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _cfg(**kwargs):
    return {
        "input_size": (3, 32, 32), "pool_size": None, "crop_pct": 1.0, "interpolation": "bilinear",
        "mean": CIFAR_MEAN, "std": CIFAR_STD, "first_conv": "stem.0", "classifier": "fc", "num_classes": 100, **kwargs,
    }


class _ClassifierMixin:
    """The slice of timm's model API that pipelines and pruning use (classifier access and reset)."""

    fc: nn.Linear

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.fc(x)


def _conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = _conv_bn(cout, cout, relu=False)
        self.shortcut = _conv_bn(cin, cout, stride, kernel=1, relu=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class CifarResNet(_ClassifierMixin, nn.Module):
    """ResNet-(6n+2) for CIFAR: a 3x3 stem and three stages of ``n`` basic blocks."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}.")
        blocks = (depth - 2) // 6
        self.stem = _conv_bn(in_chans, widths[0])
        stages, cin = [], widths[0]
        for index, cout in enumerate(widths[1:]):
            for block in range(blocks):
                stages.append(BasicBlock(cin, cout, stride=2 if index > 0 and block == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.num_features, self.num_classes = cin, num_classes
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x):
        return self.stages(self.stem(x))


class WideBlock(nn.Module):
    """Pre-activation wide basic block (BN-ReLU-conv)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class WideResNet(_ClassifierMixin, nn.Module):
    """WRN-d-k: three stages of (d-4)/6 pre-activation blocks of widths 16k, 32k, 64k."""

    def __init__(self, depth: int, widen: int, num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}.")
        blocks, widths = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False))
        layers, cin = [], widths[0]
        for index, cout in enumerate(widths[1:]):
            for block in range(blocks):
                layers.append(WideBlock(cin, cout, stride=2 if index > 0 and block == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(cin)
        self.num_features, self.num_classes = cin, num_classes
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x):
        return F.relu(self.norm(self.stages(self.stem(x))))


class CifarVGG(_ClassifierMixin, nn.Module):
    """VGG with BatchNorm: five stages separated by max-pooling, global pooling, one linear classifier."""

    def __init__(self, stages: list[list[int]], num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        layers, cin = [], in_chans
        for index, stage in enumerate(stages):
            if index > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            for cout in stage:
                layers.append(_conv_bn(cin, cout))
                cin = cout
        layers[0] = layers[0]  # first conv is 'stem.0' in the pretrained cfg
        self.stem = layers[0]
        self.features = nn.Sequential(*layers[1:])
        self.num_features, self.num_classes = cin, num_classes
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x):
        return self.features(self.stem(x))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            _conv_bn(cin, hidden, kernel=1), _conv_bn(hidden, hidden, stride, groups=hidden), _conv_bn(hidden, cout, kernel=1, relu=False)
        )

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class CifarMobileNetV2(_ClassifierMixin, nn.Module):
    """MobileNetV2 for small images (stride-1 stem; CRD's ``mobile_half`` is ``width=0.5``)."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width: float = 0.5, num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        def scaled(c: int) -> int:
            return max(8, int(c * width + 4) // 8 * 8)
        cin = scaled(32)
        self.stem = _conv_bn(in_chans, cin)
        blocks = []
        for expand, channels, repeats, stride in self.SETTINGS:
            for index in range(repeats):
                blocks.append(InvertedResidual(cin, scaled(channels), stride if index == 0 else 1, expand))
                cin = scaled(channels)
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = _conv_bn(cin, 1280, kernel=1)
        self.num_features, self.num_classes = 1280, num_classes
        self.fc = nn.Linear(1280, num_classes)

    def forward_features(self, x):
        return self.head_conv(self.blocks(self.stem(x)))


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: channel split (stride 1) or two branches (stride 2), concat, channel shuffle."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        branch = cout // 2
        inner = cin if stride > 1 else branch
        if stride > 1:
            self.left = nn.Sequential(_conv_bn(cin, cin, stride, groups=cin, relu=False), _conv_bn(cin, branch, kernel=1))
        self.right = nn.Sequential(
            _conv_bn(inner, branch, kernel=1), _conv_bn(branch, branch, stride, groups=branch, relu=False), _conv_bn(branch, branch, kernel=1)
        )

    def forward(self, x):
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.right(right)], dim=1)
        else:
            out = torch.cat([self.left(x), self.right(x)], dim=1)
        batch, channels, height, width = out.shape
        return out.view(batch, 2, channels // 2, height, width).transpose(1, 2).reshape(batch, channels, height, width)


class CifarShuffleNetV2(_ClassifierMixin, nn.Module):
    """ShuffleNetV2 (1x) for small images: stride-1 stem, stages of 116/232/464 channels, 1024-d head."""

    def __init__(self, widths=(116, 232, 464), repeats=(4, 8, 4), num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        self.stem = _conv_bn(in_chans, 24)
        units, cin = [], 24
        for cout, count in zip(widths, repeats):
            for index in range(count):
                units.append(ShuffleUnit(cin, cout, 2 if index == 0 else 1))
                cin = cout
        self.units = nn.Sequential(*units)
        self.head_conv = _conv_bn(cin, 1024, kernel=1)
        self.num_features, self.num_classes = 1024, num_classes
        self.fc = nn.Linear(1024, num_classes)

    def forward_features(self, x):
        return self.head_conv(self.units(self.stem(x)))


VGG8, VGG13 = [[64], [128], [256], [512], [512]], [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]
ARCHITECTURES = {
    "cifar_resnet8": partial(CifarResNet, 8, (16, 16, 32, 64)),
    "cifar_resnet20": partial(CifarResNet, 20, (16, 16, 32, 64)),
    "cifar_resnet32": partial(CifarResNet, 32, (16, 16, 32, 64)),
    "cifar_resnet56": partial(CifarResNet, 56, (16, 16, 32, 64)),
    "cifar_resnet110": partial(CifarResNet, 110, (16, 16, 32, 64)),
    "cifar_resnet8x4": partial(CifarResNet, 8, (64, 64, 128, 256)),
    "cifar_resnet32x4": partial(CifarResNet, 32, (64, 64, 128, 256)),
    "cifar_wrn_16_2": partial(WideResNet, 16, 2),
    "cifar_wrn_40_1": partial(WideResNet, 40, 1),
    "cifar_wrn_40_2": partial(WideResNet, 40, 2),
    "cifar_vgg8": partial(CifarVGG, VGG8),
    "cifar_vgg13": partial(CifarVGG, VGG13),
    "cifar_mobilenetv2": partial(CifarMobileNetV2, 0.5),
    "cifar_shufflenetv2": CifarShuffleNetV2,
}


def _build(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    if pretrained:
        raise ValueError(
            f"r2kd_hf ships no pretrained weights for {name}; train a teacher with scripts/train_teacher.py and load it "
            "from its output folder."
        )
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    model = ARCHITECTURES[name](**kwargs)
    model.pretrained_cfg = model.default_cfg = {**_cfg(), "architecture": name}
    return model


def _register(name: str) -> None:
    def entry(pretrained: bool = False, **kwargs):
        return _build(name, pretrained, **kwargs)

    entry.__name__ = name
    entry.__doc__ = f"{name}: {ARCHITECTURES[name].func.__doc__ if isinstance(ARCHITECTURES[name], partial) else ARCHITECTURES[name].__doc__}"
    entry.__module__ = __name__
    globals()[name] = entry
    register_model(entry)


for _name in ARCHITECTURES:
    _register(_name)
