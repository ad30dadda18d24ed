"""labelsplat: face-parsing labels that hold at extreme head poses.

Several calibrated views of a head plus a per-view parser's noisy labels are fused
into one set of 3D Gaussians carrying colour and per-class semantic logits; the
scene is rendered from new, extreme viewpoints and turned into clean label maps.
"""

__version__ = "0.1.0"

SCHEMA_VERSION = 1

__all__ = ["__version__", "SCHEMA_VERSION"]
