"""What a parser needs around its network: input size, normalisation and label scheme.

:class:`ModelInfo` is the record the model registry (:mod:`.registry`) keeps per parser and
that a loaded parser carries; it sits below the parser modules so each can describe itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a registered parser.

    ``input_size``: side in pixels of the square network input (images are resized to
    ``input_size x input_size``); ``mean``/``std``: per-channel RGB normalisation applied
    after scaling to [0, 1]; ``label_scheme``: name in :mod:`labelsplat.schemes` of the
    class ids the model predicts; ``source``/``license``: where the architecture comes from.
    """

    input_size: int = 512
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    label_scheme: str = "celebamask19-zll"
    source: str = ""
    license: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d
