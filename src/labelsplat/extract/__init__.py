"""Label extraction from rendered semantics and automatic post-processing (docs/design.md pipeline).

- :func:`extract_argmax`: argmax of rendered logits, confidence = max softmax probability,
  entropy; low alpha -> background.
- :func:`extract_palette`: the paper's variant (segmentation fitted as a palette colour image),
  nearest palette colour or k-means clustering mapped to the palette.
- :func:`postprocess`: small components, holes, largest component, left/right consistency,
  ignore marking (255) and view rejection, batched across views and classes.
"""

from .labels import ExtractResult, default_sigma, extract_argmax, extract_palette
from .postprocess import (
    DEFAULT_SINGLE_INSTANCE,
    PostprocessConfig,
    PostprocessReport,
    ViewReport,
    connected_components,
    head_x_from_depth,
    postprocess,
    reassign_nearest,
)

__all__ = [
    "ExtractResult", "extract_argmax", "extract_palette", "default_sigma",
    "PostprocessConfig", "PostprocessReport", "ViewReport", "DEFAULT_SINGLE_INSTANCE",
    "connected_components", "reassign_nearest", "head_x_from_depth", "postprocess",
]
