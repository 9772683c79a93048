"""Add-in modules: small trainable modules attached to named modules of a built model by forward
(pre-)hooks, with the rest of the model frozen (parameter-efficient fine-tuning, docs/addins.md).

Where an add-in goes is one line of :mod:`otxlike.models.addin_syntax`; a workspace lists its lines
in model.py's top-level ``addins = [...]``. :func:`attach` turns the lines into add-in instances
held in one ``nn.ModuleDict`` at ``model.addins`` and registers their hooks, so the base model's
state-dict keys stay as they are (``init_cfg=dict(type='Pretrained')`` and checkpoints of the
plain model keep loading) and a checkpoint is the whole model plus ``addins.*``.

The model is built with its add-ins by :func:`build_with_addins` (registered as
``otxlike.WithAddins``); :func:`with_addins_cfg` wraps a run config's ``model`` in it, so the add-ins
and the freezing exist before mmengine's Runner builds its optimizer (``Runner.train`` in
``mmengine/runner/runner.py``: optim wrapper, then ``init_weights``, then ``load_or_resume``).
Add-in parameters are plain ``nn.Parameter`` s, not ``nn.Linear``/``nn.Conv2d`` children, so
layer-typed ``init_cfg`` entries (``dict(type='Kaiming', layer='Conv2d')``) of the model never
re-initialise them, and ``BaseModule.init_weights`` does not descend into the ``ModuleDict``.

Freezing (what the add-in configuration says): every line freezes the top-level module its first
path names (``backbone`` for ``backbone.layer4.0.conv2``); everything else (neck, head) and the
add-ins' own parameters train. ``BitFit`` re-opens the biases under its module, ``PartialK`` the
last ``k`` children (with parameters) of its module, ``LinearProbe`` nothing. A norm layer with no
trainable parameter is kept in eval mode (its running statistics stay, as mmdet's ``norm_eval``).

Built-ins (``otxlike find --addins``): :class:`LoRA`, :class:`Adapter`, :class:`SSF`,
:class:`BitFit`, :class:`LinearProbe`, :class:`PartialK`, :class:`VPT` (ViT backbones). Custom add-ins: a subclass of
:class:`Addin` in the workspace's custom module file, registered with :func:`register_addin`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from otxlike.errors import OtxlikeError
from otxlike.models.addin_syntax import AddinLine, parse_line

_BUILTIN: dict[str, type] = {}
_CUSTOM: dict[str, type] = {}


def _builtin(cls):
    _BUILTIN[cls.__name__] = cls
    return cls


def register_addin(name: str | None = None):
    """Decorator registering a custom add-in class (a subclass of :class:`Addin`) under ``name``
    (default: the class name), for lines such as ``(MyAddin.adapt_output): ...->(m){inout1}->...``.

    The class is built as ``cls(module, **line_args)`` where ``module`` is the module at the line's
    first point (for a pair across layers also ``out_module=``, the module at ``{outN}``), and it
    implements the entry functions its lines name (:class:`Addin`).

    Raises:
        OtxlikeError: If the class is not an :class:`Addin` subclass or the name is a built-in's.
    """

    def decorate(cls):
        key = name or cls.__name__
        if not (isinstance(cls, type) and issubclass(cls, Addin)):
            raise OtxlikeError(f"add-in {key} must be a subclass of otxlike.Addin",
                               "write class MyAddin(otxlike.Addin) with adapt_* methods")
        if key in _BUILTIN:
            raise OtxlikeError(f"add-in name {key} is a built-in's", "choose another name")
        _CUSTOM[key] = cls
        return cls

    return decorate


def addin_classes() -> dict[str, type]:
    """Every known add-in class by name: the built-ins, then the registered custom ones."""
    return {**_BUILTIN, **_CUSTOM}


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a built-in add-in (needs no ``custom_imports``)."""
    return name in _BUILTIN


def _tensor(x, where: str, addin: str) -> torch.Tensor:
    if isinstance(x, (tuple, list)) and len(x) == 1:
        x = x[0]
    if not isinstance(x, torch.Tensor):
        raise OtxlikeError(f"{addin} at {where} needs one tensor there, the model has a {type(x).__name__}",
                           "put the add-in on a module whose input/output is a single tensor "
                           "(otxlike find --modules lists them)")
    return x


def channels(module: nn.Module, side: str) -> int | None:
    """Channels of ``module``'s input (``side='input'``) or output (``'output'``), read from its
    layers without running it: Linear/Conv/norm layers directly, a container from its first
    (input) or last (output) such layer in registration order. None if there is none."""
    def own(m):
        if isinstance(m, nn.Linear):
            return m.in_features if side == "input" else m.out_features
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels if side == "input" else m.out_channels
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
            return getattr(m, "num_features", None) or m.num_channels
        if isinstance(m, nn.LayerNorm):
            return int(m.normalized_shape[-1])
        return None

    found = [c for c in (own(m) for m in module.modules()) if c is not None]
    if not found:
        return None
    return found[0] if side == "input" else found[-1]


_read_channels = channels  # for constructors whose argument is named ``channels``


class Addin(nn.Module):
    """Base of add-ins. Subclasses implement the entry functions their lines name:

    - ``adapt_input(self, module, inputs) -> inputs``: a forward pre-hook of ``module``; ``inputs``
      is the tuple of its positional arguments, the return value replaces it (a tensor replaces the
      first one);
    - ``adapt_output(self, module, inputs, outputs) -> outputs``: a forward hook;
    - ``adapt_across_input(self, module, x) -> carried`` at ``{inN}`` (``x`` is the tensor there) and
      ``adapt_across_output(self, module, x, carried) -> x`` at ``{outN}``; the default adds
      ``carried`` to ``x`` and refuses tensors of different shapes.

    Attributes set by :func:`attach`: ``where`` (the line's text), ``trainable_params`` (names of
    base parameters the add-in re-opens; a method :meth:`reopen`).
    """

    #: Kinds of module the add-in fits (None: any). Checked by :func:`attach`.
    fits: tuple[type, ...] | None = None
    #: The entry functions it offers (``otxlike find --addins``).
    methods: tuple[str, ...] = ()
    #: One line for ``otxlike find --addins`` (default: the docstring's first line).
    summary: str | None = None

    def __init__(self, module: nn.Module | None = None) -> None:
        super().__init__()

    def reopen(self, module: nn.Module) -> list[nn.Parameter]:
        """Base parameters under ``module`` this add-in trains (whole-module add-ins)."""
        return []

    def adapt_across_output(self, module, x, carried):
        if not isinstance(carried, torch.Tensor) or carried.shape != x.shape:
            got = tuple(carried.shape) if isinstance(carried, torch.Tensor) else type(carried).__name__
            raise OtxlikeError(f"{type(self).__name__}: the output carried across layers has shape {got}, the "
                               f"point it is added to {tuple(x.shape)}",
                               "pick {inN}/{outN} points with the same shape (otxlike find --modules)")
        return x + carried


def _kaiming_uniform(weight: nn.Parameter) -> None:
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's / peft's init of lora_A


@_builtin
class LoRA(Addin):
    """Low-rank update of a Linear or Conv2d layer (Hu et al. 2021, "LoRA", arXiv:2106.09685):
    ``y = W x + b + (alpha / r) * B(A(dropout(x)))``, the math of peft's
    ``peft/tuners/lora/layer.py`` (``Linear``, ``Conv2d``): A kaiming-uniform (a=sqrt(5)), B zeros, so
    training starts at the pretrained function. For a Conv2d, A is a convolution with the base's
    kernel, stride, padding and dilation to ``r`` channels and B a 1x1 convolution r -> out.

    Parameters: ``r * (in + out)`` for a Linear, ``r * (in * kh * kw + out)`` for a Conv2d.

    Args:
        module: The ``nn.Linear`` (x: (..., in)) or ``nn.Conv2d`` (x: (N, in, H, W), groups=1).
        r: Rank.
        alpha: Scaling numerator (default ``r``, scaling 1: peft's defaults r=8, lora_alpha=8).
        dropout: Dropout probability on the input of A.
    """

    summary = "low-rank update (alpha / r) B A of the layer (Hu et al. 2021)"

    fits = (nn.Linear, nn.Conv2d)
    methods = ("adapt_output",)

    def __init__(self, module: nn.Module, r: int = 4, alpha: float | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(r, int) or r <= 0:
            raise OtxlikeError(f"LoRA rank r={r!r} must be a positive integer", "e.g. (LoRA(r=4).adapt_output)")
        self.r, self.scaling = r, (r if alpha is None else alpha) / r
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise OtxlikeError(f"LoRA on a grouped convolution (groups={module.groups}) is not supported",
                                   "put it on a convolution with groups=1")
            kh, kw = module.kernel_size
            self.conv = dict(stride=module.stride, padding=module.padding, dilation=module.dilation)
            self.lora_A = nn.Parameter(torch.empty(r, module.in_channels, kh, kw))
            self.lora_B = nn.Parameter(torch.zeros(module.out_channels, r, 1, 1))
        else:
            self.conv = None
            self.lora_A = nn.Parameter(torch.empty(r, module.in_features))
            self.lora_B = nn.Parameter(torch.zeros(module.out_features, r))
        _kaiming_uniform(self.lora_A)

    def adapt_output(self, module, inputs, outputs):
        x = self.dropout(inputs[0])
        if self.conv is not None:
            if isinstance(module.padding, str) or module.padding_mode != "zeros":
                raise OtxlikeError("LoRA on a Conv2d needs numeric zero padding", "put it on another convolution")
            delta = F.conv2d(F.conv2d(x, self.lora_A, **self.conv), self.lora_B)
        else:
            delta = F.linear(F.linear(x, self.lora_A), self.lora_B)
        return outputs + delta * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """``(alpha / r) * B A`` shaped like the base weight: (out, in) or (out, in, kh, kw)."""
        if self.conv is not None:
            return torch.einsum("or,rikl->oikl", self.lora_B[:, :, 0, 0], self.lora_A) * self.scaling
        return (self.lora_B @ self.lora_A) * self.scaling


def _channel_shape(x: torch.Tensor) -> tuple[int, tuple]:
    """(channels, broadcast shape): dim 1 of (N, C, H, W), the last of (N, L, C) or (N, C)."""
    if x.dim() == 4:
        return x.shape[1], (1, -1, 1, 1)
    return x.shape[-1], (-1,)


class _ChannelAddin(Addin):
    """An add-in over the channels of the tensor at its point: (N, C, H, W) or (..., C)."""

    methods = ("adapt_input", "adapt_output", "adapt_across_input")

    def __init__(self, module, side: str, channels_: int | None, out_module=None, out_side: str = "input") -> None:
        super().__init__()
        c = channels_ or channels(module, side)
        if c is None:
            raise OtxlikeError(f"{type(self).__name__} cannot tell the channels at {type(module).__name__}",
                               f"give them: ({type(self).__name__}(channels=C).adapt_output)")
        self.channels = c
        self.out_channels = c if out_module is None else channels(out_module, out_side) or c

    def check(self, x: torch.Tensor) -> None:
        c, _ = _channel_shape(x)
        if c != self.channels:
            raise OtxlikeError(f"{type(self).__name__} was sized for {self.channels} channels, the tensor at its "
                               f"point has {c} (shape {tuple(x.shape)})", "give channels=C in the line")

    def adapt_input(self, module, inputs):
        x = _tensor(inputs, type(module).__name__, type(self).__name__)
        return (self.transform(x), *inputs[1:]) if isinstance(inputs, tuple) else self.transform(x)

    def adapt_output(self, module, inputs, outputs):
        return self.transform(_tensor(outputs, type(module).__name__, type(self).__name__))

    def adapt_across_input(self, module, x):
        return self.branch(_tensor(x, type(module).__name__, type(self).__name__))


@_builtin
class Adapter(_ChannelAddin):
    """Bottleneck adapter (Houlsby et al. 2019, arXiv:1902.00751; AdaptFormer's parallel form,
    Chen et al. 2022): ``x + up(relu(down(x))) * scale`` over the channels, ``down`` C -> dim,
    ``up`` dim -> C zero-initialised (the model starts unchanged). On (N, C, H, W) both are 1x1
    convolutions, on (..., C) linear layers. Across layers (``adapt_across_input``) the branch
    ``up(relu(down(x)))`` of ``{inN}`` is added at ``{outN}`` (``up`` then maps to the channels there).

    Parameters: ``C * dim + dim + dim * C_out + C_out``.

    Args:
        module: The module at the point.
        dim: Bottleneck width.
        scale: Multiplier of the branch.
        channels: C, when it cannot be read from the module.
    """

    summary = "bottleneck x + up(relu(down(x))) (Houlsby et al. 2019)"

    def __init__(self, module, dim: int = 8, scale: float = 1.0, channels: int | None = None,
                 out_module=None, side: str = "output", out_side: str = "input") -> None:
        super().__init__(module, side, channels, out_module, out_side)
        self.scale = scale
        self.down_weight = nn.Parameter(torch.empty(dim, self.channels))
        self.down_bias = nn.Parameter(torch.zeros(dim))
        self.up_weight = nn.Parameter(torch.zeros(self.out_channels, dim))
        self.up_bias = nn.Parameter(torch.zeros(self.out_channels))
        _kaiming_uniform(self.down_weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if x.dim() == 4:
            h = F.relu(F.conv2d(x, self.down_weight[:, :, None, None], self.down_bias))
            return F.conv2d(h, self.up_weight[:, :, None, None], self.up_bias) * self.scale
        return F.linear(F.relu(F.linear(x, self.down_weight, self.down_bias)), self.up_weight, self.up_bias) * self.scale

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


@_builtin
class SSF(_ChannelAddin):
    """Scale and shift of the features (Lian et al. 2022, "Scaling & Shifting Your Features",
    arXiv:2210.08823): ``x * gamma + beta`` per channel; gamma ~ N(1, 0.02), beta ~ N(0, 0.02) as
    in the paper's code. Across layers, ``x_in * gamma + beta`` of ``{inN}`` is added at ``{outN}``.

    Parameters: ``2 * C``.
    """

    summary = "per-channel scale and shift (Lian et al. 2022)"

    def __init__(self, module, channels: int | None = None, out_module=None, side: str = "output",
                 out_side: str = "input") -> None:
        super().__init__(module, side, channels, out_module, out_side)
        self.gamma = nn.Parameter(torch.empty(self.channels).normal_(1.0, 0.02))
        self.beta = nn.Parameter(torch.empty(self.channels).normal_(0.0, 0.02))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        _, shape = _channel_shape(x)
        return x * self.gamma.view(shape) + self.beta.view(shape)

    branch = transform


@_builtin
class VPT(Addin):
    """Visual prompt tuning, shallow (Jia et al. 2022, "Visual Prompt Tuning", arXiv:2203.12119):
    ``tokens`` learnable prompt tokens inserted after the first ``after`` tokens (the class token)
    of the sequence entering ``{in1}``'s transformer layer, removed again at ``{out1}`` so the rest
    of the backbone sees the token count it was built for. For ViT backbones (tokens (N, L, C)),
    e.g. mmpretrain's ``VisionTransformer`` with its 12 ``layers``::

        (VPT(tokens=8).adapt_across_input): ...->{in1}(backbone.layers.0)->...->(backbone.layers.11){out1}->...

    Prompts are initialised uniformly in +-sqrt(6 / (3 * patch area + C)) as in the paper's code
    (patch area taken as 16 x 16). Parameters: ``tokens * C``.

    Args:
        module: The first transformer layer (its input channels C are read from its first norm).
        tokens: Number of prompt tokens.
        after: Tokens kept in front of the prompts (1: the class token; 0 without one).
        channels: C, when it cannot be read from the module.
    """

    summary = "prompt tokens through a ViT's layers (Jia et al. 2022)"

    methods = ("adapt_across_input",)
    replaces = True

    def __init__(self, module, tokens: int = 8, after: int = 1, channels: int | None = None,
                 out_module=None, side: str = "input", out_side: str = "output") -> None:
        super().__init__()
        c = channels or _read_channels(module, "input")
        if c is None:
            raise OtxlikeError(f"VPT cannot tell the token width at {type(module).__name__}",
                               "give it: (VPT(channels=C).adapt_across_input)")
        if not isinstance(tokens, int) or tokens < 1:
            raise OtxlikeError(f"VPT tokens={tokens!r} must be a positive integer", "e.g. (VPT(tokens=8)...)")
        self.tokens, self.after = tokens, after
        bound = math.sqrt(6.0 / float(3 * 16 * 16 + c))
        self.prompts = nn.Parameter(torch.empty(1, tokens, c).uniform_(-bound, bound))

    def _check(self, x, where: str) -> torch.Tensor:
        x = _tensor(x, where, "VPT")
        if x.dim() != 3 or x.shape[-1] != self.prompts.shape[-1]:
            raise OtxlikeError(f"VPT needs tokens (N, L, {self.prompts.shape[-1]}) at its points, found shape "
                               f"{tuple(x.shape)}", "put it on the transformer layers of a ViT backbone")
        return x

    def adapt_across_input(self, module, x):
        x = self._check(x, "{in1}")
        prompts = self.prompts.expand(x.shape[0], -1, -1).to(x.dtype)
        return torch.cat([x[:, :self.after], prompts, x[:, self.after:]], dim=1)

    def adapt_across_output(self, module, x, carried):
        x = self._check(x, "{out1}")
        return torch.cat([x[:, :self.after], x[:, self.after + self.tokens:]], dim=1)


@_builtin
class LinearProbe(Addin):
    """Linear probing: its module (e.g. ``backbone``) is frozen, the rest (neck, head) trains.
    No parameters of its own. Line: ``(LinearProbe): ...->(backbone)->...``."""

    summary = "the module is frozen; neck and head train"


@_builtin
class BitFit(Addin):
    """BitFit (Ben Zaken et al. 2022, arXiv:2106.10199): of its module only the bias terms train
    (convolution, linear and norm biases). Line: ``(BitFit): ...->(backbone)->...``."""

    summary = "only the module's biases train (Ben Zaken et al. 2022)"

    def reopen(self, module):
        return [p for n, p in module.named_parameters() if n.rsplit(".", 1)[-1] == "bias"]


@_builtin
class PartialK(Addin):
    """Partial-k fine-tuning: the last ``k`` children of its module that hold parameters train
    (for an mmpretrain ResNet ``backbone``, k=1 is ``layer4``), the rest of it is frozen.
    Line: ``(PartialK(k=1)): ...->(backbone)->...``.

    Args:
        k: How many of the last children train (>= 1).
    """

    summary = "only the last k children of the module train"

    def __init__(self, module=None, k: int = 1) -> None:
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise OtxlikeError(f"PartialK k={k!r} must be a positive integer", "e.g. (PartialK(k=1))")
        self.k = k

    def reopen(self, module):
        stages = [m for m in module.children() if any(True for _ in m.parameters())]
        return [p for m in stages[-self.k:] for p in m.parameters()]


def offered(cls: type) -> tuple[str, ...]:
    """The entry functions an add-in class offers: its ``methods``, else those it defines."""
    from otxlike.models.addin_syntax import METHODS

    return tuple(cls.methods) if cls.methods else tuple(m for m in METHODS if hasattr(cls, m))


def module_paths(model: nn.Module) -> list[tuple[str, str]]:
    """``(path, class name)`` of every named module of ``model`` (``named_modules()``), without the
    add-ins themselves."""
    return [(n, type(m).__name__) for n, m in model.named_modules() if n and not n.startswith("addins")]


def _get(model: nn.Module, path: str, line: str) -> nn.Module:
    import difflib

    modules = dict(model.named_modules())
    if path in modules and path:
        return modules[path]
    names = [n for n in modules if n and not n.startswith("addins")]
    close = difflib.get_close_matches(path, names, n=3, cutoff=0.5)
    raise OtxlikeError(f"the model has no module '{path}' (line {line!r})",
                       (f"closest: {', '.join(close)}; " if close else "") + "otxlike find --modules lists them")


def _hook_fn(addin: Addin, method: str, module: nn.Module):
    fn = getattr(addin, method)
    if method == "adapt_input":
        def pre(mod, inputs):
            out = fn(mod, inputs)
            return out if isinstance(out, tuple) else (out, *inputs[1:])
        return pre
    return lambda mod, inputs, outputs: fn(mod, inputs, outputs)


def _across_hooks(addin: Addin, inp, out, modules: dict):
    """Hooks carrying ``adapt_across_input`` of point ``inp`` to ``adapt_across_output`` at ``out``."""
    state: dict[str, Any] = {}

    replaces = getattr(addin, "replaces", False)

    def take(x, mod):
        value = addin.adapt_across_input(mod, x)
        if replaces:  # the add-in changes the tensor at {inN} and undoes it at {outN} (VPT)
            state["carried"] = None
            return value
        state["carried"] = value

    def give(x, mod):
        if "carried" not in state:
            raise OtxlikeError(f"{type(addin).__name__}: {{out{out.number}}} ({out.path}) ran before "
                               f"{{in{inp.number}}} ({inp.path})", "the {inN} point must run first in the forward pass")
        return addin.adapt_across_output(mod, x, state.pop("carried"))

    handles = []
    for point, act in ((inp, take), (out, give)):
        module = modules[point.path]
        if point.side == "input":
            def pre(mod, inputs, act=act, point=point):
                x = _tensor(inputs, point.path, type(addin).__name__)
                y = act(x, mod)
                return None if y is None else (y, *inputs[1:])
            handles.append(module.register_forward_pre_hook(pre))
        else:
            def post(mod, inputs, outputs, act=act, point=point):
                y = act(_tensor(outputs, point.path, type(addin).__name__), mod)
                return y
            handles.append(module.register_forward_hook(post))
    return handles


def _instantiate(cls: type, line: AddinLine, module: nn.Module, **extra) -> Addin:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    kwargs = dict(line.args)
    accepts_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key, value in extra.items():
        if key in params or accepts_kwargs:
            kwargs[key] = value
    unknown = [k for k in line.args if k not in params and not accepts_kwargs]
    if unknown:
        takes = [n for n in params if n not in ("self", "module", "out_module", "side", "out_side")]
        raise OtxlikeError(f"{cls.__name__} takes no argument {', '.join(unknown)} (line {line.text()!r})",
                           f"its arguments: {', '.join(takes) or 'none'}")
    try:
        return cls(module, **kwargs)
    except OtxlikeError:
        raise
    except TypeError as exc:
        raise OtxlikeError(f"{cls.__name__} cannot be built from line {line.text()!r}: {exc}") from exc


def attach(model: nn.Module, lines: list[str]) -> nn.ModuleDict:
    """Attach the add-ins of ``lines`` to ``model`` and freeze what they say (module docstring).

    The instances go to ``model.addins`` (keys ``<line index>_<point>``, e.g. ``0_inout1``).

    Args:
        model: The built model (an mmengine ``BaseModel``); changed in place.
        lines: Add-in lines (:mod:`otxlike.models.addin_syntax`).

    Returns:
        ``model.addins``.

    Raises:
        OtxlikeError: A syntax error (with the column), an unknown add-in or entry function, an
            unknown module path (with the closest ones), an add-in on a module of the wrong kind
            (LoRA on a BatchNorm), two add-ins that conflict on one point, or a model that has
            add-ins already.
    """
    if hasattr(model, "addins"):
        raise OtxlikeError("the model has add-ins already", "attach them once")
    classes = addin_classes()
    addins, frozen, reopened, seen = nn.ModuleDict(), [], [], {}
    modules = dict(model.named_modules())
    for index, text in enumerate(lines):
        line = parse_line(text)
        cls = classes.get(line.name)
        if cls is None:
            import difflib

            lower = {n.lower(): n for n in classes}
            close = [lower[n] for n in difflib.get_close_matches(line.name.lower(), list(lower), n=2)]
            raise OtxlikeError(f"unknown add-in '{line.name}' in line {text!r}",
                               (f"did you mean {' or '.join(close)}? " if close else "")
                               + "otxlike find --addins lists them; custom ones need @otxlike.register_addin")
        methods = offered(cls)
        whole = line.method is None
        if whole and methods:
            raise OtxlikeError(f"{line.name} needs an entry function and a point, e.g. "
                               f"({line.name}.{methods[0]}): ...->(module){{inout1}}->...")
        if not whole and not methods:
            raise OtxlikeError(f"{line.name} acts on a whole module and takes no entry function",
                               f"write ({line.name}): ...->(backbone)->...")
        if not whole and line.method not in methods:
            raise OtxlikeError(f"{line.name} has no {line.method} (it offers {', '.join(methods)})",
                               f"write ({line.name}.{methods[0]}): ...")
        for path in line.paths:
            _get(model, path, text)
        frozen.extend(p.split(".")[0] for p in line.paths)
        if whole:
            for path in line.modules:
                key = ("module", path)
                if key in seen:
                    raise OtxlikeError(f"{line.name} and {seen[key]} both set what trains in '{path}'; they conflict",
                                       "keep one of the two lines")
                seen[key] = line.name
                addin = _instantiate(cls, line, modules[path])
                addin.where = text
                addins[f"{index}_{path.replace('.', '_') or 'model'}"] = addin
                reopened.extend(addin.reopen(modules[path]))
            continue
        if line.method == "adapt_across_input":
            for inp, out in line.pairs():
                addin = _instantiate(cls, line, modules[inp.path], out_module=modules[out.path], side=inp.side,
                                     out_side=out.side)
                addin.where = text
                addin._handles = _across_hooks(addin, inp, out, modules)
                addins[f"{index}_in{inp.number}"] = addin
            continue
        for point in line.points:
            module = modules[point.path]
            if cls.fits is not None and not isinstance(module, cls.fits):
                kinds = " or ".join(k.__name__ for k in cls.fits)
                raise OtxlikeError(f"{line.name} fits {kinds} layers; {point.path} is a {type(module).__name__}",
                                   "pick a layer of that kind (otxlike find --modules)")
            key = (point.path, point.side, line.name)
            if key in seen:
                raise OtxlikeError(f"two {line.name} add-ins on the {point.side} of {point.path}; they conflict",
                                   "keep one line for that point")
            seen[key] = line.name
            addin = _instantiate(cls, line, module, side=point.side)
            addin.where = text
            hook = _hook_fn(addin, line.method, module)
            addin._handles = [module.register_forward_pre_hook(hook) if point.side == "input"
                              else module.register_forward_hook(hook)]
            addin.base_path = point.path
            addins[f"{index}_{point.label}"] = addin
    model.addins = addins
    freeze(model, sorted(set(frozen)), reopened)
    return addins


def freeze(model: nn.Module, tops: list[str], reopened: list[nn.Parameter]) -> None:
    """Freeze the top-level modules ``tops`` of ``model`` except the parameters ``reopened``; norm
    layers left without a trainable parameter are held in eval mode (a forward pre-hook, since
    mmengine's loops call ``model.train()`` every epoch)."""
    keep = {id(p) for p in reopened}
    for top in tops:
        module = model if top == "" else getattr(model, top)
        for p in module.parameters():
            p.requires_grad_(id(p) in keep)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.register_forward_pre_hook(_hold_eval)
    for p in model.addins.parameters():
        p.requires_grad_(True)


def _hold_eval(module, inputs):
    module.training = False


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model`` (numbers of scalars)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA add-in of ``model`` into its base layer's weight (``W += (alpha/r) B A``, peft's
    ``merge``) and remove it, so an exported graph has no LoRA branch.

    Returns:
        How many were merged. Other add-ins stay as hooks (they are part of the exported graph).
    """
    addins = getattr(model, "addins", None)
    if addins is None:
        return 0
    modules = dict(model.named_modules())
    merged = 0
    for key in [k for k, a in addins.items() if isinstance(a, LoRA)]:
        addin = addins[key]
        base = modules[addin.base_path]
        with torch.no_grad():
            base.weight += addin.delta_weight().to(base.weight.dtype)
        for handle in addin._handles:
            handle.remove()
        del addins[key]
        merged += 1
    return merged


def build_with_addins(model: dict, addins: list, scope: str | None = None):
    """Build the model config ``model`` in mmengine's model registry (default scope ``scope``) and
    :func:`attach` ``addins`` to it. Registered as ``otxlike.WithAddins``; returns the model itself
    (not a wrapper), so its state-dict keys are the base model's plus ``addins.*``.

    Raises:
        OtxlikeError: From :func:`attach`.
    """
    from mmengine.registry import MODELS, DefaultScope

    with DefaultScope.overwrite_default_scope(scope):
        built = MODELS.build(model)
    attach(built, list(addins))
    return built


def with_addins_cfg(cfg) -> bool:
    """Wrap ``cfg.model`` in ``otxlike.WithAddins`` when ``cfg`` has a non-empty top-level
    ``addins`` list (model.py's, written by ``otxlike build --addin``). Idempotent.

    Returns:
        Whether the config has add-ins.

    Raises:
        OtxlikeError: If ``addins`` is not a list of strings.
    """
    lines = cfg.get("addins")
    if not lines:
        return False
    if not isinstance(lines, (list, tuple)) or not all(isinstance(x, str) for x in lines):
        raise OtxlikeError("model.py's addins must be a list of add-in lines (strings)",
                           "rewrite it with 'otxlike build --addin LINE', or remove it with --addin none")
    if cfg.model.get("type") != "otxlike.WithAddins":
        cfg.model = dict(type="otxlike.WithAddins", model=cfg.model, addins=list(lines),
                         scope=cfg.get("default_scope") or "mmengine")
    return True


def register() -> None:
    """Register :func:`build_with_addins` as ``otxlike.WithAddins`` (idempotent)."""
    from otxlike.registry import MODELS

    if "WithAddins" not in MODELS.module_dict:
        MODELS.register_module(name="WithAddins", module=build_with_addins)


register()
