"""Joint RGB + semantic 3D Gaussian splatting with shared geometry (docs/design.md "The joint model").

The names a caller needs are importable from here (``from labelsplat.splat import fit, load_run``);
importing the package loads torch. Note that ``labelsplat.splat.fit`` is the function: the module
of the same name is ``importlib.import_module("labelsplat.splat.fit")``.

Modules:

* :mod:`.config` -- :class:`~.config.FitConfig` (its grammar fields parsed into typed values; the presets are
  whole trees in :mod:`labelsplat.config`).
* :mod:`.rasterize` -- one call renders RGB + K logits + depth + alpha (``cpu`` | ``naive`` | ``gsplat``).
* :mod:`.normalize` -- the similarity transform between scene units and the normalised fit frame.
* :mod:`.init` -- initial Gaussians from a point cloud or a voting visual hull.
* :mod:`.heads` -- the semantic head (:class:`~.heads.LogitsHead`, :class:`~.heads.PaletteHead`, empty).
* :mod:`.model` -- :class:`~.model.GaussianModel` (a ``ParameterDict`` usable by gsplat's strategies + a head).
* :mod:`.losses` -- L1, SSIM, semantic cross-entropy, palette L1, alpha loss, the noise transition.
* :mod:`.semantic_loss` -- the semantic losses behind one protocol (CE, GCE, noise-corrected).
* :mod:`.render` -- camera tensors, :func:`~.render.render_model`, the backend choice.
* :mod:`.data` -- views, the resolution pyramid, the camera order, class and view weights.
* :mod:`.optim` -- optimisers, the densification strategy.
* :mod:`.checkpoint` -- the checkpoint format, :class:`~.checkpoint.RunState`, the resume rules.
* :mod:`.fit` -- :class:`~.fit.FitLoop` (setup / step / finish, callbacks) and :func:`~.fit.fit`.
* :mod:`.assign` -- label assignment after the fit (keep the fitted features, or the multiview vote).
* :mod:`.outputs` -- PLY, training-view renders, run.json.
* :mod:`.ply` -- Inria 3DGS PLY with per-Gaussian labels, in scene units.
* :mod:`.export` -- exports other 3DGS tools read (padded PLY, PLY coloured by label, .splat).
* :mod:`.run` -- :func:`~.run.load_run`, :func:`~.run.render_cameras` of a finished run.
* :mod:`.lift`, :mod:`.colour_weights` -- label-quality tools.
"""

from .assign import KeepFitted, LabelAssigner, Unweight, VoteAssigner, make_assigner
from .checkpoint import RunState, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import FitConfig
from .data import ViewData, ViewLevel, ViewPyramid, concept_class_weights, load_views
from .fit import FitCallback, FitLoop, FitResult, StepStats, default_callbacks, fit
from .heads import EmptyHead, LogitsHead, PaletteHead, SemanticHead, make_head
from .model import GaussianModel
from .normalize import Normalization
from .render import camera_tensors, count_views_seen, render_model, resolve_backend
from .run import MEMBERS_DIR, FittedRun, final_checkpoint, load_run, render_batches, render_cameras, run_from_checkpoint
from .semantic_loss import CrossEntropy, GeneralizedCE, NoiseCorrected, SemanticLoss, make_semantic_loss

__all__ = [
    "MEMBERS_DIR", "CrossEntropy", "EmptyHead", "FitCallback", "FitConfig", "FitLoop", "FitResult", "FittedRun",
    "GaussianModel",
    "GeneralizedCE", "KeepFitted", "LabelAssigner", "LogitsHead", "NoiseCorrected", "Normalization", "PaletteHead",
    "RunState", "SemanticHead", "SemanticLoss", "StepStats", "Unweight", "ViewData", "ViewLevel", "ViewPyramid", "VoteAssigner",
    "camera_tensors", "concept_class_weights", "count_views_seen", "default_callbacks", "final_checkpoint", "fit", "latest_checkpoint",
    "load_checkpoint", "load_run", "load_views", "make_assigner", "make_head", "make_semantic_loss", "render_batches",
    "render_cameras", "render_model", "resolve_backend", "run_from_checkpoint", "save_checkpoint",
]
