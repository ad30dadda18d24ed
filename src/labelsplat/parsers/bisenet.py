"""BiSeNet face parser, architecture and parameter names of zllrunning/face-parsing.PyTorch.

The module tree matches that project's ``model.py`` exactly, so its released
``79999_iter.pth`` (a plain state dict) loads with ``strict=True`` and gives its outputs:

* ``cp`` — :class:`ContextPath`: ``cp.resnet`` (ResNet-18, see :mod:`.resnet`), ``cp.arm16``,
  ``cp.arm32`` (:class:`AttentionRefinementModule`: ``conv.conv/bn``, ``conv_atten``,
  ``bn_atten``), ``cp.conv_head32``, ``cp.conv_head16``, ``cp.conv_avg`` (:class:`ConvBNReLU`).
* The spatial path is the backbone's 1/8 features (``feat8``), as in that project.
* ``ffm`` — :class:`FeatureFusionModule` (``convblk``, ``conv1``, ``conv2``).
* ``conv_out``, ``conv_out16``, ``conv_out32`` — :class:`BiSeNetOutput` (``conv.conv/bn``,
  ``conv_out`` 1x1).

The context path upsamples with ``nearest``; only the three heads upsample bilinearly with
``align_corners=True``. :meth:`BiSeNet.forward` takes a normalised batch (B, 3, H, W) and
returns the logits ``(out, out16, out32)``, each (B, n_classes, H, W) at the input size.
No weights are downloaded and nothing is moved to a GPU here.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LabelsplatError
from ..io import check_regular_file
from .resnet import Resnet18

DEFAULT_N_CLASSES = 19


class ConvBNReLU(nn.Module):
    def __init__(self, in_chan: int, out_chan: int, ks: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chan, out_chan, kernel_size=ks, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chan)
        nn.init.kaiming_normal_(self.conv.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BiSeNetOutput(nn.Module):
    def __init__(self, in_chan: int, mid_chan: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, mid_chan, ks=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(mid_chan, n_classes, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.conv_out.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


def _global_avg(x: torch.Tensor) -> torch.Tensor:
    # == F.avg_pool2d(x, x.size()[2:]) of the original, but exportable with dynamic sizes
    return x.mean(dim=(2, 3), keepdim=True)


class AttentionRefinementModule(nn.Module):
    def __init__(self, in_chan: int, out_chan: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, out_chan, ks=3, stride=1, padding=1)
        self.conv_atten = nn.Conv2d(out_chan, out_chan, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_chan)
        self.sigmoid_atten = nn.Sigmoid()
        nn.init.kaiming_normal_(self.conv_atten.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        atten = self.sigmoid_atten(self.bn_atten(self.conv_atten(_global_avg(feat))))
        return feat * atten


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = Resnet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, ks=3, stride=1, padding=1)
        self.conv_head16 = ConvBNReLU(128, 128, ks=3, stride=1, padding=1)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(_global_avg(feat32))
        avg_up = F.interpolate(avg, feat32.shape[2:], mode="nearest")

        feat32_sum = self.arm32(feat32) + avg_up
        feat32_up = F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(feat32_up)

        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest")
        feat16_up = self.conv_head16(feat16_up)
        return feat8, feat16_up, feat32_up  # 1/8, 1/8, 1/16


class FeatureFusionModule(nn.Module):
    def __init__(self, in_chan: int, out_chan: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_chan, out_chan, ks=1, stride=1, padding=0)
        self.conv1 = nn.Conv2d(out_chan, out_chan // 4, kernel_size=1, stride=1, padding=0, bias=False)
        self.conv2 = nn.Conv2d(out_chan // 4, out_chan, kernel_size=1, stride=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.sigmoid = nn.Sigmoid()
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=1)

    def forward(self, fsp: torch.Tensor, fcp: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = self.sigmoid(self.conv2(self.relu(self.conv1(_global_avg(feat)))))
        return feat * atten + feat


class BiSeNet(nn.Module):
    """BiSeNet of face-parsing.PyTorch; ``n_classes`` output channels (19 by default).

    Input: (B, 3, H, W) float, RGB normalised with ImageNet mean/std (see
    :mod:`labelsplat.parsers.preprocess`); H and W should be multiples of 32.
    Output: ``(out, out16, out32)`` logits, each (B, n_classes, H, W); ``out`` is the one used
    for prediction, the other two are auxiliary heads for training.
    """

    def __init__(self, n_classes: int = DEFAULT_N_CLASSES):
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 2 or n_classes > 255:
            raise LabelsplatError(f"BiSeNet needs 2..255 classes, got {n_classes!r}")
        self.n_classes = n_classes
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"BiSeNet expects (B, 3, H, W), got {tuple(x.shape)}")
        size = x.shape[2:]
        feat_res8, feat_cp8, feat_cp16 = self.cp(x)
        feat_fuse = self.ffm(feat_res8, feat_cp8)  # spatial path = backbone 1/8 features
        out = self.conv_out(feat_fuse)
        out16 = self.conv_out16(feat_cp8)
        out32 = self.conv_out32(feat_cp16)
        out = F.interpolate(out, size, mode="bilinear", align_corners=True)
        out16 = F.interpolate(out16, size, mode="bilinear", align_corners=True)
        out32 = F.interpolate(out32, size, mode="bilinear", align_corners=True)
        return out, out16, out32

    def head_parameter_names(self) -> set[str]:
        """Names of the parameters of the fusion module and heads (10x lr in the original recipe)."""
        names = set()
        for prefix in ("ffm", "conv_out", "conv_out16", "conv_out32"):
            for n, _ in getattr(self, prefix).named_parameters():
                names.add(f"{prefix}.{n}")
        return names


# ----------------------------------------------------------------------------- loading
CLASS_KEY = "conv_out.conv_out.weight"


def extract_state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The BiSeNet state dict inside a loaded checkpoint object.

    Accepts a plain state dict (face-parsing.PyTorch's ``79999_iter.pth``, and what
    ``labelsplat train`` writes), or a dict holding one under ``state_dict`` / ``model``
    (e.g. a ``labelsplat`` resume state). A ``module.`` prefix (DataParallel) is stripped.
    """
    sd = obj
    if isinstance(sd, dict) and CLASS_KEY not in sd and "module." + CLASS_KEY not in sd:
        for key in ("state_dict", "model"):
            if isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not sd:
        raise LabelsplatError(
            f"not a BiSeNet checkpoint: expected a state dict, found {type(obj).__name__}",
            path=path,
            hint="pass face-parsing.PyTorch's 79999_iter.pth or a file written by `labelsplat train`",
        )
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise LabelsplatError(f"not a state dict: entry {k!r} is a {type(v).__name__}, not a tensor", path=path)
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def load_bisenet(
    path: str | Path,
    n_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> BiSeNet:
    """Load BiSeNet weights (``weights_only=True``) with a strict key check; model in eval mode.

    The class count is read from ``conv_out.conv_out.weight``; if ``n_classes`` is given
    (e.g. the label scheme's class count) and differs, a :class:`LabelsplatError` says so.
    Missing or unexpected keys give an error listing them. The only tolerated difference is
    BatchNorm's ``num_batches_tracked`` counters missing (checkpoints from torch < 0.4.1):
    they are filled with zeros (they do not affect inference).
    """
    path = Path(path)
    sd = extract_state_dict(_load_tensors(path), path)
    return bisenet_from_state_dict(sd, n_classes=n_classes, device=device, path=path)


def _load_tensors(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of a weights file, every failure a :class:`LabelsplatError`."""
    if not path.exists():
        raise LabelsplatError("weights file not found", path=path)
    check_regular_file(path, "weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a Python object: never fall back
        raise LabelsplatError(
            "cannot load the weights: the file holds Python objects besides tensors, which are refused "
            "(loading them could run code)",
            path=path,
            hint="expected a plain PyTorch state dict (e.g. 79999_iter.pth); re-save it as one with a trusted tool",
        ) from exc
    except Exception as exc:  # truncated zip, non-tensor objects
        raise LabelsplatError(
            f"cannot load the weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            path=path,
            hint="expected a PyTorch state dict saved with torch.save (e.g. 79999_iter.pth)",
        ) from exc


def load_backbone_weights(model: "BiSeNet", path: str | Path) -> int:
    """Load a torchvision ResNet-18 state dict (``torchvision.models.resnet18().state_dict()``, e.g.
    ImageNet weights the user has) into ``model``'s backbone ``cp.resnet``, as face-parsing.PyTorch
    initialises it; the classifier ``fc.*`` is dropped. Strict otherwise: missing or unexpected
    keys and shape mismatches are refused. Returns the number of tensors loaded."""
    path = Path(path)
    obj = _load_tensors(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LabelsplatError("not a ResNet-18 state dict", path=path,
                              hint="save one with torch.save(torchvision.models.resnet18(...).state_dict(), PATH)")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items() if not k.startswith("fc.")}
    target = model.cp.resnet
    expected = target.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
             if k in sd and sd[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what}: {keys[:4]}" for what, keys in
                           (("missing", missing), ("unexpected", unexpected), ("shape", wrong)) if keys)
        raise LabelsplatError(f"not a torchvision ResNet-18 state dict ({detail})", path=path,
                              hint="pass torchvision.models.resnet18's state dict (the 'fc' classifier is ignored)")
    for k in expected:
        sd.setdefault(k, expected[k])  # BatchNorm counters absent from old checkpoints
    target.load_state_dict(sd, strict=True)
    return len(sd)


def bisenet_from_state_dict(
    sd: dict[str, torch.Tensor],
    n_classes: int | None = None,
    device: str | torch.device = "cpu",
    path: str | Path | None = None,
) -> BiSeNet:
    """Build a :class:`BiSeNet` from a state dict (strict), checking the class count."""
    if CLASS_KEY not in sd:
        raise LabelsplatError(
            f"not a BiSeNet state dict: no '{CLASS_KEY}' (first keys: {list(sd)[:5]})",
            path=path,
            hint="the parameter names must be those of face-parsing.PyTorch (cp.resnet.*, ffm.*, conv_out.*)",
        )
    found = int(sd[CLASS_KEY].shape[0])
    if n_classes is not None and found != int(n_classes):
        raise LabelsplatError(
            f"the weights predict {found} classes but {n_classes} were expected (label scheme)",
            path=path,
            hint="pass the --scheme the weights were trained with, or weights for this scheme",
        )
    model = BiSeNet(found)
    expected = model.state_dict()
    sd = dict(sd)
    missing = [k for k in expected if k not in sd]
    if missing and all(k.endswith("num_batches_tracked") for k in missing):
        for k in missing:
            sd[k] = torch.zeros((), dtype=torch.long)
        missing = []
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}")
        if unexpected:
            parts.append(
                f"{len(unexpected)} unexpected keys: {', '.join(unexpected[:12])}{' ...' if len(unexpected) > 12 else ''}"
            )
        raise LabelsplatError(
            "the weights do not match face-parsing.PyTorch's BiSeNet: " + "; ".join(parts),
            path=path,
            hint="the checkpoint must come from face-parsing.PyTorch's model.py or `labelsplat train`",
        )
    bad = [k for k, v in expected.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        k = bad[0]
        raise LabelsplatError(
            f"{len(bad)} tensors have the wrong shape, e.g. {k}: {tuple(sd[k].shape)} instead of {tuple(expected[k].shape)}",
            path=path,
        )
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model.to(device)
