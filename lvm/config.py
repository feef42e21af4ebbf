"""Typed, frozen configuration for every component.

Each dataclass is validated in ``__post_init__``, varied with
``dataclasses.replace`` and stored with ``asdict`` in every checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field

METHODS = ("ours", "abp", "vae")
OT_SOLVERS = ("fast", "paper", "exact")
DATA_SETS = ("mnist", "fashion", "folder", "svhn")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"                 # mnist | fashion | folder | svhn
    classes: tuple[int, ...] = ()       # keep only these labels; () keeps all
    root: str = ""                      # folder / svhn root (user-given)
    image_size: int = 28                # side of the square images the model sees
    channels: int = 1                   # 1 = grey, 3 = RGB
    limit: int = 0                      # use only the first `limit` images; 0 = all

    def __post_init__(self) -> None:
        _check(self.name in DATA_SETS, f"data set must be one of {DATA_SETS}, got {self.name!r}")
        _check(self.image_size in (28, 32, 64), f"image_size must be 28, 32 or 64, got {self.image_size}")
        _check(self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}")
        _check(self.limit >= 0, "limit must be >= 0")
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))


@dataclass(frozen=True)
class ModelConfig:
    latent_dim: int = 16                # d, size of z
    arch: str = "conv"                  # conv (images) | mlp (small, for the 2-D teaching demo)
    image_size: int = 28                # output side: 28, 32 or 64
    channels: int = 1                   # output channels
    width: int = 32                     # base channel count (conv) or hidden size / 8 (mlp)

    def __post_init__(self) -> None:
        _check(self.latent_dim >= 1, "latent_dim must be >= 1")
        _check(self.arch in ("conv", "mlp"), f"arch must be conv or mlp, got {self.arch!r}")
        _check(self.image_size in (28, 32, 64), f"image_size must be 28, 32 or 64, got {self.image_size}")
        _check(self.channels in (1, 3), "channels must be 1 or 3")
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
class OTConfig:
    solver: str = "fast"                # fast (certified auction) | paper (Alg. 2) | exact (scipy, small n only)
    epsilon: float = 0.05               # paper: stop when the share of unmatched targets <= epsilon
    lr: float = 0.01                    # paper: Adam step on the dual h (Alg. 2)
    betas: tuple[float, float] = (0.9, 0.5)  # paper: Adam betas as the paper states them
    max_iter: int = 200                 # paper and fast: give up (warn) after this many full passes
    chunk: int = 4096                   # sources per block of scores: memory O(n * chunk), capped at 16 MB
    tol: float = 1e-4                   # fast: stop at this certified relative gap on the transport cost
    scaling: float = 5.0                # fast: epsilon is divided by this each phase
    candidates: int = 0                 # fast: targets listed per source; 0 = 32, or 128 for long rows
    coarse: int = 4000                  # fast: cold starts from this many points begin from subsamples' prices

    def __post_init__(self) -> None:
        _check(self.solver in OT_SOLVERS, f"OT solver must be one of {OT_SOLVERS}, got {self.solver!r}")
        _check(0 <= self.epsilon < 1, "epsilon must be in [0, 1)")
        _check(self.lr > 0, "OT lr must be > 0")
        _check(self.max_iter >= 1, "max_iter must be >= 1")
        _check(self.chunk >= 1, "chunk must be >= 1")
        _check(self.tol > 0, "OT tol must be > 0")
        _check(self.scaling > 1, "OT scaling must be > 1")
        _check(self.candidates >= 0, "OT candidates must be >= 0 (0 = automatic)")
        _check(self.coarse >= 0, "OT coarse must be >= 0 (0 = never start from subsamples)")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))


@dataclass(frozen=True)
class TrainConfig:
    method: str = "ours"                # ours | abp (alpha = 0) | vae
    alpha: float = 0.5                  # z <- alpha T(z) + (1 - alpha) z  (Eq. 10)
    ot_every: int = 100                 # L: correct the population every L iterations
    learn_steps: int = 1                # L2: Adam steps on theta per batch
    lr: float = 1e-3                    # Adam learning rate on theta
    batch_size: int = 128
    epochs: float = 3.0                 # passes over the training set (fractions allowed)
    persistent: bool = True             # warm-start each chain from its last z (else from noise)
    seed: int = 0
    checkpoint_every: int = 500         # iterations between checkpoints; 0 = only at the end
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    ot: OTConfig = field(default_factory=OTConfig)

    def __post_init__(self) -> None:
        _check(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        _check(0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], got {self.alpha}")
        _check(self.ot_every >= 1, "ot_every (L) must be >= 1")
        _check(self.learn_steps >= 1, "learn_steps (L2) must be >= 1")
        _check(self.lr > 0, "lr must be > 0")
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(self.epochs > 0, "epochs must be > 0")
        _check(self.checkpoint_every >= 0, "checkpoint_every must be >= 0")

    @property
    def corrects(self) -> bool:
        """Whether OT correction runs at all (ABP and the VAE never correct)."""
        return self.method == "ours" and self.alpha > 0


def from_dict(d: dict) -> TrainConfig:
    """Rebuild a TrainConfig from ``asdict`` output (as stored in checkpoints)."""
    d = dict(d)
    return TrainConfig(
        data=DataConfig(**d.pop("data")),
        model=ModelConfig(**d.pop("model")),
        langevin=LangevinConfig(**d.pop("langevin")),
        ot=OTConfig(**d.pop("ot")),
        **d,
    )
