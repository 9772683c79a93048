"""custom_training.py: an optimizer, a learning-rate schedule, a loss and a metric of your own.

Copy it into a workspace and list it in workspace.yaml (``custom_modules: [custom_training.py]``,
with your other module files), or paste the classes into custom_backbones.py. otxlike imports the
file before it loads model.py, so the classes are registered in mmengine's root registries and
model.py names them by type, from any default scope. ``force=True`` lets the file be imported
again (by another workspace) without a "registered twice" error.
"""
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.optim.scheduler import StepLR
from mmengine.registry import METRICS, MODELS, OPTIMIZERS, PARAM_SCHEDULERS


@OPTIMIZERS.register_module(force=True)
class SignSGD(torch.optim.Optimizer):
    """signSGD (Bernstein et al. 2018): each step moves every weight by lr against its gradient's sign.
    Use: ``otxlike train --optimizer SignSGD --lr 0.001``."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, dict(lr=lr, sign=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])


@PARAM_SCHEDULERS.register_module(force=True)
class HalvingLR(StepLR):
    """Halve the learning rate every ``step_size`` epochs.
    Use in model.py: ``param_scheduler = [dict(type='HalvingLR', by_epoch=True)]``."""

    def __init__(self, optimizer, step_size=1, **kwargs):
        super().__init__(optimizer, step_size=step_size, gamma=0.5, **kwargs)


@MODELS.register_module(force=True)
class SmoothedCrossEntropy(torch.nn.Module):
    """Cross-entropy with label smoothing (Szegedy et al. 2016), in mmpretrain's loss interface.
    Use in model.py: ``head=dict(..., loss=dict(type='SmoothedCrossEntropy', smoothing=0.1))``."""

    def __init__(self, smoothing=0.1):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, cls_score, label, avg_factor=None, **kwargs):
        return F.cross_entropy(cls_score, label, label_smoothing=self.smoothing)


@METRICS.register_module(force=True)
class BalancedAccuracy(BaseMetric):
    """Mean recall over classes, in percent: key ``balanced/accuracy``.
    Use in data_pipeline.py: ``val_evaluator = [dict(type='Accuracy', topk=(1, )),
    dict(type='BalancedAccuracy')]``, and ``otxlike train --eval-key balanced/accuracy``."""

    default_prefix = "balanced"

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append((int(sample["pred_label"]), int(sample["gt_label"])))

    def compute_metrics(self, results):
        classes = sorted({gt for _, gt in results})
        recalls = [sum(p == gt for p, g in results if g == gt) / sum(g == gt for _, g in results) for gt in classes]
        return {"accuracy": 100.0 * sum(recalls) / len(recalls)}
