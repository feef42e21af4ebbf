"""Typed, frozen configuration for every component.

Each dataclass is validated in ``__post_init__`` (its own fields and, for
`TrainConfig`, the rules that tie fields together), varied with
``dataclasses.replace`` and stored with ``asdict`` in every checkpoint. A run
is its ``asdict(cfg)``: `save_config` writes it as JSON, `load_config` /
`from_dict` read it back (older checkpoints' flat OT settings included), and
``python -m lvm train --config run.json`` runs exactly that run.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

METHODS = ("ours", "abp", "vae")
OT_SOLVERS = ("fast", "paper", "exact")
DATA_SETS = ("mnist", "fashion", "folder", "svhn")
ARCHS = ("conv", "mlp")
IMAGE_SIZES = (28, 32, 64)
CHANNELS = (1, 3)
DEFAULT_ALPHA = 0.5  # the paper's balance of FID and MSE (Fig. 5)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def default_arch(latent_dim: int) -> str:
    """The generator for a latent size: the small MLP for the 2-D teaching demo, else the conv net."""
    return "mlp" if latent_dim == 2 else "conv"


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"                 # one of DATA_SETS
    classes: tuple[int, ...] = ()       # keep only these labels; () keeps all
    root: str = ""                      # folder / svhn root (user-given)
    image_size: int = 28                # side of the square images the model sees
    channels: int = 1                   # 1 = grey, 3 = RGB
    limit: int = 0                      # use only the first `limit` images; 0 = all

    def __post_init__(self) -> None:
        _check(self.name in DATA_SETS, f"data set must be one of {DATA_SETS}, got {self.name!r}")
        _check(self.image_size in IMAGE_SIZES, f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        _check(self.channels in CHANNELS, f"channels must be one of {CHANNELS}, got {self.channels}")
        _check(self.limit >= 0, "limit must be >= 0")
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))


@dataclass(frozen=True)
class ModelConfig:
    latent_dim: int = 16                # d, size of z
    arch: str = "auto"                  # conv | mlp; auto = default_arch(latent_dim)
    image_size: int = 28                # output side, one of IMAGE_SIZES
    channels: int = 1                   # output channels
    width: int = 32                     # base channel count (conv) or hidden size / 8 (mlp)

    def __post_init__(self) -> None:
        _check(self.latent_dim >= 1, "latent_dim must be >= 1")
        if self.arch == "auto":
            object.__setattr__(self, "arch", default_arch(self.latent_dim))
        _check(self.arch in ARCHS, f"arch must be one of {ARCHS} or auto, got {self.arch!r}")
        _check(self.image_size in IMAGE_SIZES, f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        _check(self.channels in CHANNELS, f"channels must be one of {CHANNELS}, got {self.channels}")
        _check(self.width >= 4, "width must be >= 4")


@dataclass(frozen=True)
class LangevinConfig:
    steps: int = 20                     # K, Langevin steps per visit (Eq. 7); chains persist across visits
    step_size: float = 0.1              # s; drift s^2/2, noise s (Eq. 7); 0.03 barely moves chains here
    sigma: float = 0.3                  # observation noise std of p(x|z)
    noise: bool = True                  # False gives plain gradient ascent (MAP), for tests

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "steps (K) must be >= 0")
        _check(self.step_size > 0, "step_size (s) must be > 0")
        _check(self.sigma > 0, "sigma must be > 0")


@dataclass(frozen=True)
class InferenceConfig:
    """Test-time inference, the same for every method: Langevin from the prior (PROTOCOL sec. 2)."""

    steps: int = 100                    # Langevin steps from N(0, I)
    step_size: float | None = None      # s; None = the model's training s
    restarts: int = 1                   # chains per image; the lowest energy is kept
    n: int = 10000                      # test images to use; 0 = all
    refine: int = 0                     # noise-free steps after each chain's noisy ones (scoring only)

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "test-time steps must be >= 0")
        _check(self.step_size is None or self.step_size > 0, "test-time step size must be > 0")
        _check(self.restarts >= 1, "restarts must be >= 1")
        _check(self.n >= 0, "n must be >= 0 (0 = all)")
        _check(self.refine >= 0, "refine steps must be >= 0")

    def langevin(self, trained: LangevinConfig) -> LangevinConfig:
        """The model's own Langevin settings with this test-time K and s."""
        return replace(trained, steps=self.steps, step_size=self.step_size or trained.step_size)


@dataclass(frozen=True)
class FastOTConfig:
    """The certified auction (lvm.ot.auction)."""

    tol: float = 1e-4                   # stop at this certified relative gap on the transport cost
    scaling: float = 5.0                # epsilon is divided by this each phase
    candidates: int = 0                 # targets listed per source; 0 = 32, or 128 for long rows
    coarse: int = 4000                  # cold starts from this many points begin from subsamples' prices

    def __post_init__(self) -> None:
        _check(self.tol > 0, "OT tol must be > 0")
        _check(self.scaling > 1, "OT scaling must be > 1")
        _check(self.candidates >= 0, "OT candidates must be >= 0 (0 = automatic)")
        _check(self.coarse >= 0, "OT coarse must be >= 0 (0 = never start from subsamples)")


@dataclass(frozen=True)
class PaperOTConfig:
    """Alg. 2 as written: Adam on the dual h."""

    epsilon: float = 0.05               # stop when the share of unmatched targets <= epsilon
    lr: float = 0.01                    # Adam step on h
    betas: tuple[float, float] = (0.9, 0.5)  # Adam betas as the paper states them

    def __post_init__(self) -> None:
        _check(0 <= self.epsilon < 1, "epsilon must be in [0, 1)")
        _check(self.lr > 0, "OT lr must be > 0")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "OT betas must be two values in [0, 1)")


@dataclass(frozen=True)
class OTConfig:
    solver: str = "fast"                # fast (certified auction) | paper (Alg. 2) | exact (scipy, small n only)
    max_iter: int = 200                 # fast and paper: give up (warn) after this many full passes
    chunk: int = 4096                   # sources per block of scores: memory O(n * chunk), capped at 64 MB
    fast: FastOTConfig = field(default_factory=FastOTConfig)
    paper: PaperOTConfig = field(default_factory=PaperOTConfig)

    def __post_init__(self) -> None:
        _check(self.solver in OT_SOLVERS, f"OT solver must be one of {OT_SOLVERS}, got {self.solver!r}")
        _check(self.max_iter >= 1, "max_iter must be >= 1")
        _check(self.chunk >= 1, "chunk must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "ours"                # one of METHODS; abp is alpha = 0
    alpha: float | None = None          # z <- alpha T(z) + (1 - alpha) z (Eq. 10); None = 0.5 for ours, 0 for abp
    ot_every: int = 100                 # L: correct the population every L iterations
    learn_steps: int = 1                # L2: Adam steps on theta per batch
    lr: float = 1e-3                    # Adam learning rate on theta
    batch_size: int = 128
    epochs: float = 3.0                 # passes over the training set (fractions allowed)
    persistent: bool = True             # warm-start each chain from its last z (else from noise)
    seed: int = 0
    checkpoint_every: int = 500         # iterations between checkpoints; 0 = only at the end
    q_fit_n: int = 300                  # training images of the honest q(z^K) fit at every L-th iteration; 0 = off
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    ot: OTConfig = field(default_factory=OTConfig)

    def __post_init__(self) -> None:
        _check(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        if self.alpha is None:
            object.__setattr__(self, "alpha", 0.0 if self.method == "abp" else DEFAULT_ALPHA)
        object.__setattr__(self, "alpha", float(self.alpha))
        _check(0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], got {self.alpha}")
        _check(self.method != "abp" or self.alpha == 0.0,
               f"method abp is alpha = 0 (no correction), got alpha {self.alpha}: use method ours for alpha > 0")
        _check(self.ot_every >= 1, "ot_every (L) must be >= 1")
        _check(self.learn_steps >= 1, "learn_steps (L2) must be >= 1")
        _check(self.lr > 0, "lr must be > 0")
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(self.epochs > 0, "epochs must be > 0")
        _check(self.checkpoint_every >= 0, "checkpoint_every must be >= 0")
        _check(self.q_fit_n >= 0, "q_fit_n must be >= 0 (0 = off)")
        for name in ("image_size", "channels"):
            have, want = getattr(self.model, name), getattr(self.data, name)
            _check(have == want, f"the model's {name} ({have}) must match the data's ({want})")

    @property
    def corrects(self) -> bool:
        """Whether OT correction runs at all (ABP and the VAE never correct)."""
        return self.method == "ours" and self.alpha > 0


_NESTED = {TrainConfig: {"data": DataConfig, "model": ModelConfig, "langevin": LangevinConfig, "ot": OTConfig},
           OTConfig: {"fast": FastOTConfig, "paper": PaperOTConfig}}
_FLAT_OT = {"fast": ("tol", "scaling", "candidates", "coarse"), "paper": ("epsilon", "lr", "betas")}  # lvm <= 0.2


def _build(cls: type, d: dict, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(known))}")
    nested = _NESTED.get(cls, {})
    return cls(**{k: _build(nested[k], v, f"{where}.{k}") if k in nested else v for k, v in d.items()})


def from_dict(d: dict) -> TrainConfig:
    """Rebuild a TrainConfig from ``asdict`` output (checkpoints, run.json), refusing unknown settings.

    Raises:
        ValueError: an unknown or invalid setting (the message names it).
    """
    d = json.loads(json.dumps(d))  # a deep copy; tuples become lists, which __post_init__ turns back
    ot = d.get("ot")
    if isinstance(ot, dict):  # older checkpoints hold the solvers' knobs flat
        for solver, keys in _FLAT_OT.items():
            moved = {k: ot.pop(k) for k in keys if k in ot}
            if moved:
                ot[solver] = {**ot.get(solver, {}), **moved}
    return _build(TrainConfig, d, "config")


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write ``asdict(cfg)`` as JSON (what `load_config` and ``train --config`` read)."""
    path = Path(path)
    path.write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    return path


def load_config(path: str | Path) -> TrainConfig:
    """The TrainConfig a JSON file describes (a run.json, or a manifest's "config").

    Raises:
        ValueError: the file is not JSON or holds an unknown or invalid setting.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    try:
        return from_dict(d)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
