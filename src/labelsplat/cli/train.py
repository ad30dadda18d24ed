"""`labelsplat train`, `finetune`, `export-onnx` and `dataset from-scenes`: thin commands over
:mod:`labelsplat.train` and :mod:`labelsplat.parsers`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .options import Crop, CropRadius, Data, InputSize, Overwrite, Scheme, Seed, TrainOut, train_options, with_options

Init = Annotated[Path, typer.Option("--init", help="Starting weights (79999_iter.pth or a `train` output).")]

dataset_app = typer.Typer(
    name="dataset",
    help="Training sets in the dataset layout (images/, labels/, manifest.json).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


BackboneWeights = Annotated[Optional[Path], typer.Option(
    "--backbone-weights",
    help="A torchvision ResNet-18 state dict (e.g. ImageNet weights you have) to start the backbone from; "
         "default random initialisation. Nothing is downloaded.")]


def _run_training(*, data, out, init, opts: dict, backbone_weights: Path | None = None) -> None:
    """Train (``init`` None) or fine-tune with the shared training options ``opts``."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console

    from ..rundir import check_output_file
    from ..train.data import parse_mix
    from ..train.loop import TrainConfig, artifact_paths, train

    console = Console()
    mixes = [parse_mix(m) for m in (opts["mix"] or [])]
    check_output_file(out, overwrite=opts["overwrite"], resume=opts["resume"],
                      inputs=[init, backbone_weights, *data, *(d for d, _ in mixes)])
    cfg = TrainConfig(
        data=[str(d) for d in data], out=str(out), mix=[(str(d), r) for d, r in mixes],
        init=None if init is None else str(init),
        backbone_weights=None if backbone_weights is None else str(backbone_weights),
        scheme=opts["scheme"], input_size=opts["input_size"],
        crop_size=opts["crop_size"], iters=opts["iters"], batch_size=opts["batch_size"], lr=opts["lr"],
        warmup_iters=opts["warmup"], seed=opts["seed"], device=opts["device"], ckpt_every=opts["ckpt_every"],
        log_every=opts["log_every"], augment=not opts["no_augment"], amp=opts["amp"], workers=opts["workers"],
        accumulate=opts["accumulate"], sync_bn=opts["sync_bn"],
    )
    res = train(cfg, resume=opts["resume"], overwrite=opts["overwrite"], progress=True)
    if res.rank != 0:  # under torchrun only rank 0 reports (and writes files)
        return
    paths = artifact_paths(out)
    procs = f" x {res.world_size} processes" if res.world_size > 1 else ""
    acc = f" x {cfg.accumulate} accumulated" if cfg.accumulate > 1 else ""
    first = res.first_loss if res.first_loss is None else round(res.first_loss, 4)
    last = res.last_loss if res.last_loss is None else round(res.last_loss, 4)
    console.print(
        f"{'resumed at step ' + str(res.start_step) + ', ' if res.start_step else ''}trained {res.steps - res.start_step} "
        f"steps (batch {cfg.batch_size}{procs}{acc}) in {res.seconds:.1f} s; loss {first} -> {last}\n"
        f"weights: {paths['weights']} (plain state dict, face-parsing.PyTorch names)\n"
        f"metadata: {paths['meta']}; resume state: {paths['state']}; log: {paths['log']}"
    )
    if res.validation:
        v = res.validation[-1]
        miou = "n/a" if v["val_miou"] is None else f"{v['val_miou']:.4f}"
        console.print(f"validation mIoU {miou} on {v['val_views']} val view(s) at step {v['step']} "
                      f"(every --ckpt-every steps in the log)")


def _argv_from_params(ctx: typer.Context, skip: tuple[str, ...] = ("nproc",)) -> list[str]:
    """The command line that reproduces this command's parsed options (for the child processes)."""
    args: list[str] = []
    for p in ctx.command.params:
        if p.name in skip or p.name not in ctx.params or not getattr(p, "opts", None):
            continue
        value = ctx.params[p.name]
        if getattr(p, "is_flag", False):
            if value:
                args.append(p.opts[0])
            elif p.secondary_opts:
                args.append(p.secondary_opts[0])
        elif value is None:
            continue
        elif p.multiple:
            for v in value:
                args += [p.opts[0], str(v)]
        else:
            args += [p.opts[0], str(value)]
    return args


def _launch_local(ctx: typer.Context, command: str, nproc: int) -> None:
    """``--nproc N``: run this command in N local processes through torchrun's own launcher
    (``torch.distributed.run --standalone``: a local rendezvous on a free port)."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    import signal

    from ..errors import LabelsplatError
    from ..train.distributed import detect_env

    if nproc < 1:
        raise LabelsplatError(f"--nproc must be >= 1, got {nproc}")
    if detect_env().world_size > 1:
        raise LabelsplatError("--nproc inside a torchrun job", hint="use either torchrun or --nproc, not both")
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    argv = ["--standalone", "--nproc_per_node", str(nproc), "-m", "labelsplat.cli", command, *_argv_from_params(ctx)]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        torchrun.main(argv)
    except ChildFailedError as exc:
        codes = sorted({f.exitcode for f in exc.failures.values()})
        raise LabelsplatError(f"{len(exc.failures)} of {nproc} training processes failed (exit code "
                              f"{', '.join(map(str, codes))}); their errors are printed above") from None
    finally:
        for sig, h in handlers.items():  # the launcher installs its own; put the caller's back
            if h is not None:
                signal.signal(sig, h)


COMMON_EPILOG = "Outputs: CKPT (state dict), CKPT.json (metadata), CKPT.state.pt (resume), CKPT.train_log.jsonl."
TRAIN_EPILOG = ("Examples:\n\n"
                "  labelsplat train --data frontal_ds --out baseline.pth --input-size 128 --iters 4000 --batch-size 8\n\n"
                "  labelsplat train --data ds_a --data ds_b --out model.pth --resume\n\n" + COMMON_EPILOG)
FINETUNE_EPILOG = (
    "Examples:\n\n"
    "  labelsplat finetune --init baseline.pth --data refined/dataset --mix frontal_ds:0.5 --out ft.pth\n\n"
    "  labelsplat finetune --init 79999_iter.pth --data refined/dataset --out ft.pth --iters 2000\n\n"
    "  torchrun --nproc_per_node 4 -m labelsplat.cli finetune --init w.pth --data ds --out ft.pth  (DDP; --batch-size "
    "per process)\n\n" + COMMON_EPILOG)


def _opts(values: dict) -> dict:
    return values


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""

    @app.command("train", epilog=TRAIN_EPILOG)
    @with_options(train_options(), into="opts", build=_opts)
    def train_cmd(ctx: typer.Context, data: Data, out: TrainOut, backbone_weights: BackboneWeights = None,
                  opts=None) -> None:
        """Train BiSeNet from scratch on datasets in the dataset layout.

        face-parsing.PyTorch recipe (OHEM CE on three heads, SGD, warm-up + poly) on datasets in the dataset layout. Nothing
        is downloaded: the backbone starts from random initialisation, or from --backbone-weights."""
        if opts["nproc"] > 1:
            return _launch_local(ctx, "train", opts["nproc"])
        opts = {**opts, "scheme": opts["scheme"] or "celebamask19-zll", "input_size": opts["input_size"] or 512}
        _run_training(data=data, out=out, init=None, opts=opts, backbone_weights=backbone_weights)

    @app.command("finetune", epilog=FINETUNE_EPILOG)
    @with_options(train_options(iters=4000, lr=1e-3), into="opts", build=_opts)
    def finetune_cmd(ctx: typer.Context, init: Init, data: Data, out: TrainOut, opts=None) -> None:
        """Fine-tune BiSeNet weights on datasets (e.g. refined extreme views).

        Optionally mixed with the original training set at a chosen ratio (--mix DIR:RATIO)."""
        if opts["nproc"] > 1:
            return _launch_local(ctx, "finetune", opts["nproc"])
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..parsers.infer import read_weights_metadata

        meta = read_weights_metadata(init) or {}
        opts = {**opts, "scheme": opts["scheme"] or meta.get("label_scheme", "celebamask19-zll"),
                "input_size": opts["input_size"] or int(meta.get("input_size", 512))}
        _run_training(data=data, out=out, init=init, opts=opts)

    @app.command("export-onnx", epilog=(
        "Examples:\n\n  labelsplat export-onnx 79999_iter.pth --out bisenet.onnx\n\n"
        "  labelsplat export-onnx model.pth --out model.onnx --input-size 256\n\n"
        "Needs the [onnx] extra (pip install 'labelsplat[onnx]') to run the model with onnxruntime."))
    def export_onnx_cmd(
        weights: Path = typer.Argument(..., help="BiSeNet weights (state dict)."),
        out: Path = typer.Option(..., "--out", help="Output .onnx file (a .json sidecar is written next to it)."),
        input_size: InputSize = None,
        scheme: Scheme = None,
        opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    ) -> None:
        """Export the parser's main head to ONNX: input (B,3,H,W) normalised RGB -> logits (B,K,H,W), every axis dynamic."""
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from rich.console import Console

        from ..parsers.onnx_export import export_onnx

        meta = export_onnx(weights, out, input_size=input_size, scheme=scheme, opset=opset)
        Console().print(f"wrote {out} (input {meta['input_size']}px, {len(meta['classes'])} classes "
                        f"{meta['label_scheme']}, opset {opset}) + {out}.json")

    @dataset_app.command("from-scenes", epilog=(
        "Examples:\n\n  labelsplat dataset from-scenes synth/head_000 synth/head_001 --out frontal_ds --max-yaw 30\n\n"
        "  labelsplat dataset from-scenes scenes/* --out noisy_ds --labels noisy"))
    def from_scenes_cmd(
        scenes: List[Path] = typer.Argument(..., help="Scene directories."),
        out: Path = typer.Option(..., "--out", help="Dataset directory to create."),
        labels: str = typer.Option("gt", "--labels", help="gt (gt_label_path) or noisy (label_path)."),
        crop: Crop = True,
        crop_radius: CropRadius = None,
        crop_size: Optional[int] = typer.Option(
            None, "--crop-size", help="Side in px every face crop is resized to (default: the median crop side)."),
        max_yaw: Optional[float] = typer.Option(None, "--max-yaw", help="Keep only views with |yaw| below this (degrees)."),
        val_fraction: float = typer.Option(0.0, "--val-fraction", help="Fraction of scenes (identities) put in split 'val'."),
        overwrite: Overwrite = False,
        seed: Seed = 0,
    ) -> None:
        """Build a training set (images/, labels/, overlays/, transforms.json, manifest.json) from
        scenes' frames and their labels, with yaw/pitch per view from the head frame."""
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from rich.console import Console

        from ..rundir import NEW, RunDir
        from ..train.scenes_dataset import dataset_from_scenes

        rd = RunDir(out, "dataset", inputs=scenes)
        replace = rd.check(overwrite=overwrite) != NEW or out.exists()  # an empty folder is replaced too
        s = dataset_from_scenes(scenes, out, labels=labels.lower(), crop=crop, crop_radius=crop_radius,
                                crop_size=crop_size, max_abs_yaw=max_yaw, overwrite=replace, val_fraction=val_fraction, seed=seed)
        rd.write_provenance({"labels": labels.lower(), "crop": crop, "crop_radius": crop_radius, "crop_size": crop_size,
                             "max_yaw": max_yaw,
                             "val_fraction": val_fraction}, seed)
        Console().print(f"wrote {s.n_views} views ({s.n_cropped} face-cropped, {s.n_skipped_yaw} skipped by --max-yaw) "
                        f"in {s.label_scheme} -> {s.out}")

    app.add_typer(dataset_app, name="dataset")
