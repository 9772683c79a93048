"""Mixed precision on the CPU: bf16 autocast in the optimizer wrapper's context.

mmengine's ``AmpOptimWrapper`` (``mmengine/optim/optimizer/amp_optimizer_wrapper.py``) asserts a
CUDA/NPU/MLU/MUSA device; on the CPU, PyTorch autocasts to bfloat16 only, without a loss scaler
(``mmengine/runner/amp.py``: ``autocast(device_type='cpu')``). This wrapper adds exactly that
context around the forward and loss, as ``AmpOptimWrapper.optim_context`` does on CUDA.
"""

from __future__ import annotations

from contextlib import contextmanager

from mmengine.optim import OptimWrapper

from otxlike.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBF16OptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward and loss run under ``torch.autocast('cpu', bfloat16)``.

    Used as ``optim_wrapper=dict(type='otxlike.CPUBF16OptimWrapper', optimizer=...)`` by
    ``otxlike train --precision bf16`` on the CPU. Gradients and parameters stay fp32.
    """

    @contextmanager
    def optim_context(self, model):
        import torch
        from mmengine.runner.amp import autocast

        with super().optim_context(model), autocast(device_type="cpu", dtype=torch.bfloat16):
            yield
