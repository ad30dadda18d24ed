"""Joint RGB + semantic 3D Gaussian splatting with shared geometry (DESIGN.md "The joint model").

Modules (import them directly; nothing heavy is imported here so ``labelsplat --help`` stays fast):

* :mod:`.rasterize` -- one call renders RGB + K logits + depth + alpha (``cpu`` | ``naive`` | ``gsplat``).
* :mod:`.config` -- :class:`~.config.FitConfig` (the presets are whole trees in :mod:`labelsplat.config`).
* :mod:`.normalize` -- the similarity transform between scene units and the normalised fit frame.
* :mod:`.init` -- initial Gaussians from a point cloud or a voting visual hull.
* :mod:`.model` -- :class:`~.model.GaussianModel` (a ``ParameterDict`` usable by gsplat's strategies).
* :mod:`.losses` -- L1, SSIM, semantic cross-entropy, alpha loss.
* :mod:`.trainer` -- :func:`~.trainer.fit` (loop, densification, checkpoints, resume, logs).
* :mod:`.ply` -- Inria 3DGS PLY with per-Gaussian labels, in scene units.
* :mod:`.render_views` -- :func:`~.render_views.load_run`, :func:`~.render_views.render_cameras`.
"""
