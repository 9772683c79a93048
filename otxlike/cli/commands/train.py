"""``otxlike train``: train the workspace's model, with hyper-parameters by flag for one run."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors

ORDER = 2


def train(
    workspace: WorkspaceOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override max_epochs of model.py for this run.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Base learning rate.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Training images per batch.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="An optimizer of mmengine's registry (torch's included), "
                                                         "e.g. AdamW.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="cosine, step, plateau or none.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Iterations of linear learning-rate warm-up (0: none).")] = None,
    eval_interval: Annotated[Optional[int], typer.Option(help="Epochs between validations.")] = None,
    eval_key: Annotated[Optional[str], typer.Option(help="Metric that picks the best checkpoint and that plateau "
                                                        "and early stopping watch (docs/training.md).")] = None,
    early_stop: Annotated[Optional[int], typer.Option(help="Stop after this many validations without improvement.")] = None,
    precision: Annotated[str, typer.Option(help="fp32, bf16 (autocast, CPU too) or fp16 (CUDA).")] = "fp32",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[Optional[int], typer.Option(help="Random seed of the run.")] = None,
    weights: Annotated[str, typer.Option(help="Pretrained weights of model.py: auto (load them, or warn and train from "
                                              "random weights when they cannot be had), none, or required.")] = "auto",
    cfg_options: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE overrides of any config key "
                                                                  "(repeat, or several in one quoted value).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the newest interrupted run from its last checkpoint "
                                               "(its hyper-parameters; --epochs may extend it).")] = False,
    skip_bad_images: Annotated[bool, typer.Option("--skip-bad-images", help="Leave out images that are missing or "
                                                  "do not decode (and their annotations), with a warning and a count, "
                                                  "instead of refusing the data.")] = False,
    verbose: Annotated[bool, typer.Option(help="Also show mmengine's log lines.")] = False,
    nproc: Annotated[Optional[int], typer.Option(help="Train on N CPU processes of this machine (torchrun, gloo); "
                                                      "docs/distributed.md.")] = None,
    gpus: Annotated[Optional[str], typer.Option(help="Train on N GPUs (--gpus 2) or on these (--gpus 0,1), one "
                                                     "process each (torchrun, NCCL).")] = None,
    nnodes: Annotated[int, typer.Option(help="Machines taking part; run the same command on each.")] = 1,
    node_rank: Annotated[int, typer.Option(help="This machine's number, 0 on the one at --master-addr.")] = 0,
    master_addr: Annotated[Optional[str], typer.Option(help="Address of the machine with --node-rank 0.")] = None,
    master_port: Annotated[Optional[int], typer.Option(help="A free TCP port on that machine.")] = None,
    rdzv_endpoint: Annotated[Optional[str], typer.Option(help="HOST:PORT of a c10d rendezvous, instead of "
                                                              "--master-addr/--master-port/--node-rank.")] = None,
) -> None:
    """Train the workspace's model on data.yaml's train split (validating on val).

    The flags override model.py for this run only; the run folder's hparams.yaml records what
    was used. --nproc / --gpus / --nnodes start the run on several processes through torchrun
    (docs/distributed.md)."""
    from otxlike.engine.hparams import HParams
    from otxlike.engine.launch import Launch

    out = console()
    with errors():
        options = tuple(item for value in cfg_options or [] for item in value.split())
        hp = HParams(epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer, scheduler=scheduler,
                     warmup=warmup, eval_interval=eval_interval, eval_key=eval_key, early_stop=early_stop,
                     precision=precision, device=device, seed=seed, cfg_options=options, weights=weights,
                     skip_bad_images=skip_bad_images)
        hp.check()  # before torch is imported
        launch = Launch(nproc=nproc, gpus=gpus, nnodes=nnodes, node_rank=node_rank, master_addr=master_addr,
                        master_port=master_port, rdzv_endpoint=rdzv_endpoint)
        launch.check(hp)
        run_device = device
        if resume and not launch.wanted:  # --resume trains on the run's own device (train refuses --device)
            from otxlike.workspace.runs import resumable_run, saved_overrides
            from otxlike.workspace.workspace import Workspace

            run = resumable_run(Workspace.load(workspace))
            run_device = saved_overrides(run).get("device", device) if run is not None else device
        if run_device == "cpu" and not launch.wanted:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # torch must not see the GPU: mmengine uses what it sees
        from otxlike.cli.render.progress import train_progress
        from otxlike.cli.render.tables import metrics_table
        from otxlike.engine.launch import launch_train
        from otxlike.engine.train import train as run_train
        from otxlike.workspace.workspace import Workspace

        ws = Workspace.load(workspace)
        bar, on_progress = train_progress(out)
        with bar:
            if launch.wanted:
                result = launch_train(ws, launch, on_progress=on_progress, verbose=verbose, hparams=hp, resume=resume)
            else:
                result = run_train(ws, on_progress=on_progress, verbose=verbose, hparams=hp, resume=resume)
        out.print(metrics_table(result.metrics, "Validation after training"))
        out.print(f"[*] Run folder: {result.run_dir} ({result.seconds:.1f} s)", highlight=False)
        out.print(f"[*] Checkpoint: {result.checkpoint}", highlight=False)
        if result.curves is not None:
            out.print(f"[*] Curves: {result.curves} (TensorBoard: tensorboard --logdir {result.run_dir})",
                      highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(train)
