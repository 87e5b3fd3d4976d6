"""The small CIFAR/TinyImageNet networks of the KD literature (CRD, mdistiller, R2KD), registered with timm.

Each network is the one the R2KD reference code trains (mdistiller's ``models/cifar`` and ``models/tiny``):
same layers, same parameter count and MACs, same weight initialisation, and the **same state-dict key names**, so
the published CRD/mdistiller/R2KD teacher checkpoints load strictly (``r2kd_hf.load_model("ckpt.pth", arch=...)``).
Every network ends in global average pooling, so one definition runs at 32 px (CIFAR) and 64 px (TinyImageNet);
the reference's fixed pooling windows equal global pooling at those sizes. The VGGs pool a fourth time only at
64 px, as the reference does.

After ``import r2kd_hf``, ``timm.create_model("cifar_resnet8x4", num_classes=100)`` works, and the models save,
push and load through ``TimmWrapperForImageClassification`` and ``timm.create_model("hf-hub:...")``.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

# CIFAR-100 statistics exactly as the reference normalises (mdistiller dataset/cifar100.py).
CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


class _CifarClassifier(nn.Module):
    """The slice of timm's model API that pipelines and pruning use (features, head, classifier reset).

    Subclasses set ``classifier_name`` (the reference's attribute: ``fc``, ``classifier`` or ``linear``).
    """

    classifier_name = "fc"
    num_features: int
    num_classes: int
    in_chans: int

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        setattr(self, self.classifier_name, self._make_head(num_classes))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_kaiming_fan_out(model: nn.Module) -> None:
    """mdistiller ResNets: Kaiming-normal (fan-out) convolutions, unit BatchNorm, PyTorch's default Linear."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _init_msra(model: nn.Module, linear_std: float | None) -> None:
    """WRN/VGG/MobileNetV2 of mdistiller: conv ~ N(0, 2/(k·k·C_out)), unit BatchNorm, zero biases.

    ``linear_std``: the Linear weight ~ N(0, std) (VGG, MobileNetV2: 0.01); ``None`` keeps PyTorch's default (WRN).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------- ResNet (He et al.)
class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU. Keys: conv1, bn1, conv2, bn2, downsample."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(_CifarClassifier):
    """ResNet-(6n+2) for CIFAR: 3x3 stem of ``widths[0]`` channels, three stages of ``n`` basic blocks.

    ``resnet8x4``/``resnet32x4`` use widths (32, 64, 128, 256): the stem has 32 channels, the first stage 64.
    """

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        self.in_chans = in_chans  # timm models carry it (timm.task and data-config helpers read it)
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}.")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for stage, cout in enumerate(widths[1:], start=1):
            layers = []
            for index in range(blocks):
                layers.append(BasicBlock(cin, cout, stride=2 if stage > 1 and index == 0 else 1))
                cin = cout
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.num_features, self.num_classes = cin, num_classes
        self.fc = self._make_head(num_classes)
        _init_kaiming_fan_out(self)

    def forward_features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


# ---------------------------------------------------------------------------- Wide ResNet (Zagoruyko & Komodakis)
class WideBlock(nn.Module):
    """Pre-activation block. When the shape changes, the shortcut (``convShortcut``) sees the activated input."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.convShortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if cin != cout else None

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        return out + (x if self.convShortcut is None else self.convShortcut(activated))


class _WideStage(nn.Module):
    """A stage of wide blocks, held under ``.layer`` as in the reference (keys ``blockN.layer.i.*``)."""

    def __init__(self, count: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(count)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(_CifarClassifier):
    """WRN-d-k: a 3x3 stem of 16 channels and three stages of (d-4)/6 blocks of widths 16k, 32k, 64k."""

    def __init__(self, depth: int, widen: int, num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        self.in_chans = in_chans  # timm models carry it (timm.task and data-config helpers read it)
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}.")
        count, widths = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.block1 = _WideStage(count, widths[0], widths[1], 1)
        self.block2 = _WideStage(count, widths[1], widths[2], 2)
        self.block3 = _WideStage(count, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.num_features, self.num_classes = widths[3], num_classes
        self.fc = self._make_head(num_classes)
        _init_msra(self, linear_std=None)

    def forward_features(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return F.relu(self.bn1(x))


# ------------------------------------------------------------------------------------ VGG (Simonyan & Zisserman)
class CifarVGG(_CifarClassifier):
    """VGG with BatchNorm and biased convolutions: five blocks; max-pooling after blocks 0-2 (and 3 at 64 px).

    Each block is ``conv, BN, ReLU, ..., conv, BN`` (its last ReLU applied in ``forward``), keys ``blockN.i.*``.
    """

    classifier_name = "classifier"

    def __init__(self, stages: list[list[int]], num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        self.in_chans = in_chans  # timm models carry it (timm.task and data-config helpers read it)
        cin = in_chans
        for index, stage in enumerate(stages):
            layers: list[nn.Module] = []
            for cout in stage:
                layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            setattr(self, f"block{index}", nn.Sequential(*layers[:-1]))
        self.num_features, self.num_classes = cin, num_classes
        self.classifier = self._make_head(num_classes)
        _init_msra(self, linear_std=0.01)

    def forward_features(self, x):
        pool_before_last = x.shape[-2] == 64  # reference: the 4th max-pool runs for 64-px inputs only
        x = F.relu(self.block0(x))
        for index in (1, 2, 3):
            x = F.relu(getattr(self, f"block{index}")(F.max_pool2d(x, 2)))
        if pool_before_last:
            x = F.max_pool2d(x, 2)
        return F.relu(self.block4(x))


# ------------------------------------------------------------------------------------ MobileNetV2 (Sandler et al.)
class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depth-wise, 1x1 project (keys ``conv.{0,1,3,4,6,7}``); residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CifarMobileNetV2(_CifarClassifier):
    """MobileNetV2 as CRD's ``mobile_half``: stride-2 stem, channels ``int(c · width)`` (no rounding), expansion 6.

    The classifier is ``classifier.0`` (a one-layer ``Sequential``), as in the reference.
    """

    classifier_name = "classifier"
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width: float = 0.5, num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        self.in_chans = in_chans  # timm models carry it (timm.task and data-config helpers read it)
        cin = int(32 * width)
        self.conv1 = _conv_bn_relu(in_chans, cin, 3, 2)
        stages = []
        for expand, channels, repeats, stride in self.SETTINGS:
            cout = int(channels * width)
            stages.append(nn.Sequential(*[InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expand) for i in range(repeats)]))
            cin = cout
        self.blocks = nn.ModuleList(stages)
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = _conv_bn_relu(cin, last, 1, 1)
        self.num_features, self.num_classes = last, num_classes
        self.classifier = self._make_head(num_classes)
        _init_msra(self, linear_std=0.01)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(self.num_features, num_classes)) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        head = self.classifier
        return head[0] if isinstance(head, nn.Sequential) else head

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.classifier(x)

    def forward_features(self, x):
        x = self.conv1(x)
        for stage in self.blocks:
            x = stage(x)
        return self.conv2(x)


# ----------------------------------------------------------------------------------- ShuffleNetV2 (Ma et al.)
def _channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    batch, channels, height, width = x.shape
    return x.reshape(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(batch, channels, height, width)


class ShuffleBasicBlock(nn.Module):
    """Stride-1 unit: split channels in half, transform the second half (1x1, 3x3 dw, 1x1), concat, shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1, self.bn1 = nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half)
        self.conv2, self.bn2 = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False), nn.BatchNorm2d(half)
        self.conv3, self.bn3 = nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half)

    def forward(self, x):
        half = x.shape[1] // 2
        kept, x = x[:, :half], x[:, half:]
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = F.relu(self.bn3(self.conv3(out)))
        return _channel_shuffle(torch.cat([kept, out], 1))


class ShuffleDownBlock(nn.Module):
    """Stride-2 unit: a depth-wise + 1x1 left branch (conv1, conv2) and a 1x1, dw, 1x1 right branch (conv3-5)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.conv1, self.bn1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), nn.BatchNorm2d(cin)
        self.conv2, self.bn2 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = nn.Conv2d(mid, mid, 1, bias=False), nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return _channel_shuffle(torch.cat([left, right], 1))


class CifarShuffleNetV2(_CifarClassifier):
    """ShuffleNetV2 1x for small images: a **1x1** stem of 24 channels, stages of 116/232/464 channels (a down
    block then 3/7/3 basic blocks), a 1x1 conv to 1024, ``linear`` classifier; PyTorch's default initialisation."""

    classifier_name = "linear"

    def __init__(self, widths=(116, 232, 464, 1024), repeats=(3, 7, 3), num_classes: int = 100, in_chans: int = 3, **_):
        super().__init__()
        self.in_chans = in_chans  # timm models carry it (timm.task and data-config helpers read it)
        self.conv1, self.bn1 = nn.Conv2d(in_chans, 24, 1, bias=False), nn.BatchNorm2d(24)
        cin = 24
        for stage, (cout, count) in enumerate(zip(widths[:3], repeats), start=1):
            setattr(self, f"layer{stage}", nn.Sequential(ShuffleDownBlock(cin, cout), *[ShuffleBasicBlock(cout) for _ in range(count)]))
            cin = cout
        self.conv2, self.bn2 = nn.Conv2d(cin, widths[3], 1, bias=False), nn.BatchNorm2d(widths[3])
        self.num_features, self.num_classes = widths[3], num_classes
        self.linear = self._make_head(num_classes)

    def forward_features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.relu(self.bn2(self.conv2(x)))


VGG8, VGG13 = [[64], [128], [256], [512], [512]], [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]
ARCHITECTURES = {
    "cifar_resnet8": partial(CifarResNet, 8, (16, 16, 32, 64)),
    "cifar_resnet20": partial(CifarResNet, 20, (16, 16, 32, 64)),
    "cifar_resnet32": partial(CifarResNet, 32, (16, 16, 32, 64)),
    "cifar_resnet56": partial(CifarResNet, 56, (16, 16, 32, 64)),
    "cifar_resnet110": partial(CifarResNet, 110, (16, 16, 32, 64)),
    "cifar_resnet8x4": partial(CifarResNet, 8, (32, 64, 128, 256)),
    "cifar_resnet32x4": partial(CifarResNet, 32, (32, 64, 128, 256)),
    "cifar_wrn_16_2": partial(WideResNet, 16, 2),
    "cifar_wrn_40_1": partial(WideResNet, 40, 1),
    "cifar_wrn_40_2": partial(WideResNet, 40, 2),
    "cifar_vgg8": partial(CifarVGG, VGG8),
    "cifar_vgg13": partial(CifarVGG, VGG13),
    "cifar_mobilenetv2": partial(CifarMobileNetV2, 0.5),
    "cifar_shufflenetv2": CifarShuffleNetV2,
}
# The reference's own names (mdistiller's model_dict keys), for checkpoints and the converter.
REFERENCE_NAMES = {
    "resnet8": "cifar_resnet8", "resnet20": "cifar_resnet20", "resnet32": "cifar_resnet32", "resnet56": "cifar_resnet56",
    "resnet110": "cifar_resnet110", "resnet8x4": "cifar_resnet8x4", "resnet32x4": "cifar_resnet32x4",
    "wrn_16_2": "cifar_wrn_16_2", "wrn_40_1": "cifar_wrn_40_1", "wrn_40_2": "cifar_wrn_40_2", "vgg8": "cifar_vgg8",
    "vgg13": "cifar_vgg13", "mobile_half": "cifar_mobilenetv2", "MobileNetV2": "cifar_mobilenetv2",
    "ShuffleV2": "cifar_shufflenetv2",
}

_FIRST_CONV = {"CifarVGG": "block0.0", "CifarMobileNetV2": "conv1.0"}
_CLASSIFIER = {"CifarVGG": "classifier", "CifarMobileNetV2": "classifier.0", "CifarShuffleNetV2": "linear"}


def _model_class(name: str) -> type:
    entry = ARCHITECTURES[name]
    return entry.func if isinstance(entry, partial) else entry


def _cfg(name: str) -> dict:
    cls = _model_class(name).__name__
    return {
        "url": "", "input_size": (3, 32, 32), "pool_size": None, "crop_pct": 1.0, "interpolation": "bilinear",
        "mean": CIFAR_MEAN, "std": CIFAR_STD, "first_conv": _FIRST_CONV.get(cls, "conv1"),
        "classifier": _CLASSIFIER.get(cls, "fc"), "num_classes": 100, "license": "apache-2.0",
    }


default_cfgs = generate_default_cfgs({name: _cfg(name) for name in ARCHITECTURES})


def _build(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """timm's builder: ``pretrained=True`` loads weights named by the pretrained config (``hf-hub:`` repos, files)."""
    kwargs.setdefault("pretrained_strict", True)
    return build_model_with_cfg(ARCHITECTURES[name], name, pretrained, **kwargs)


def _register(name: str) -> None:
    def entry(pretrained: bool = False, **kwargs):
        return _build(name, pretrained, **kwargs)

    entry.__name__ = name
    entry.__doc__ = f"{name}: {_model_class(name).__doc__}"
    entry.__module__ = __name__
    globals()[name] = entry
    register_model(entry)


for _name in ARCHITECTURES:
    _register(_name)
