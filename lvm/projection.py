"""Latents (n, d) -> the plane, fitted once so that every frame shares its axes.

d = 2 is drawn as is. For d > 2 the default is PCA without centring: the
projection P (2, d) has orthonormal rows, so the prior N(0, I_d) projects to
exactly N(0, I_2) and its density contours stay true in every frame. UMAP, on
request, shows clusters better but bends space: the prior is then drawn as its
projected sample, not as contours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("pca", "umap")


@dataclass
class Projection:
    """Fit once with `fit`, then `transform` any (n, d) array of the same d."""

    method: str = "pca"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"projection must be one of {METHODS}, got {self.method!r}")
        self._components: np.ndarray | None = None
        self._umap = None
        self.d: int | None = None

    @property
    def fitted(self) -> bool:
        return self.d is not None

    @property
    def exact_prior(self) -> bool:
        """Whether the prior's image is exactly N(0, I_2), so its contours can be drawn."""
        return self.d == 2 or self.method == "pca"

    def fit(self, z: np.ndarray) -> Projection:
        """Fit on latents z (n, d): the top-2 right singular vectors of the uncentred z, or UMAP."""
        z = np.asarray(z, dtype=np.float64)
        self.d = z.shape[1]
        if self.d == 2:
            return self
        if self.method == "pca":
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            self._components = vt[:2]                             # (2, d), orthonormal rows
        else:
            import umap  # slow to import (numba); only when asked for

            self._umap = umap.UMAP(n_components=2, random_state=self.seed, n_jobs=1).fit(z)
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, 2), float32."""
        if not self.fitted:
            raise ValueError("fit the projection before transforming")
        z = np.asarray(z, dtype=np.float64)
        if z.shape[1] != self.d:
            raise ValueError(f"the projection was fitted for d = {self.d}, got d = {z.shape[1]}")
        if self.d == 2:
            out = z
        elif self._components is not None:
            out = z @ self._components.T
        else:
            out = self._umap.transform(z)
        return np.asarray(out, dtype=np.float32)
