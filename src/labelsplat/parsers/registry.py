"""A small timm-style model registry: each parser with its preprocessing and label scheme.

``register_model(name, info, factory)`` records a model; ``get_model_info(name)`` gives its
:class:`ModelInfo` (input size, mean/std, label scheme, source, licence);
``create_model(name, n_classes)`` builds it untrained (no download, ever).
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import LabelsplatError
from ..schemes import get_scheme
from .landmarks import LANDMARK_INFO, NATIVE_SCHEME, load_landmark_parser
from .model_info import IMAGENET_MEAN, IMAGENET_STD, ModelInfo

_REGISTRY: dict[str, tuple[ModelInfo, Callable[..., Any]]] = {}


def register_model(name: str, info: ModelInfo, factory: Callable[..., Any] | None = None) -> None:
    """Register (or replace) ``name``; ``factory(n_classes)`` builds an untrained model."""
    if not name or not isinstance(name, str):
        raise ValueError("model name must be a non-empty string")
    if factory is None:
        if name in _REGISTRY:
            factory = _REGISTRY[name][1]
        else:
            raise ValueError(f"register_model({name!r}): a factory is needed for a new model")
    _REGISTRY[name] = (info, factory)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name][0]
    except KeyError:
        raise LabelsplatError(f"unknown parser model {name!r}; known: {', '.join(list_models())}") from None


def create_model(name: str = "bisenet", n_classes: int | None = None):
    """An untrained model; ``n_classes`` defaults to the class count of its label scheme."""
    get_model_info(name)
    info, factory = _REGISTRY[name]
    if n_classes is None:
        n_classes = scheme_num_classes(info.label_scheme)
    return factory(n_classes)


def scheme_num_classes(scheme: str) -> int:
    """Class count of a label scheme (via :mod:`labelsplat.schemes`)."""
    return get_scheme(scheme).num_classes


def _bisenet_factory(n_classes: int):
    from .bisenet import BiSeNet  # lazy: torch (~1 s), needed only to build the network

    return BiSeNet(n_classes)


register_model(
    "bisenet",
    ModelInfo(
        input_size=512,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        label_scheme="celebamask19-zll",
        source="https://github.com/zllrunning/face-parsing.PyTorch (model.py, resnet.py; weights 79999_iter.pth)",
        license="MIT (face-parsing.PyTorch); weights trained on CelebAMask-HQ (non-commercial research use)",
        description="BiSeNet with a ResNet-18 context path, 19 CelebAMask-HQ classes in face-parsing.PyTorch order",
    ),
    _bisenet_factory,
)


def _mediapipe_factory(n_classes: int):
    """The landmark parser (MediaPipe models ship inside the wheel; nothing is trained)."""
    if n_classes != scheme_num_classes(NATIVE_SCHEME):
        raise LabelsplatError(f"the mediapipe landmark parser labels {NATIVE_SCHEME} "
                              f"({scheme_num_classes(NATIVE_SCHEME)} classes), not {n_classes} classes")
    return load_landmark_parser()


register_model("mediapipe", LANDMARK_INFO, _mediapipe_factory)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelInfo", "register_model", "list_models", "get_model_info",
           "create_model", "scheme_num_classes"]
