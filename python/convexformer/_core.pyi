"""Type stubs of the Rust extension module convexformer._core."""

from os import PathLike
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import NDArray

__version__: str

Config = dict[str, Any]

class Model:
    """A fitted convex attention model (the CLI's model.safetensors)."""

    def predict(self, x: NDArray[np.floating]) -> NDArray[np.float64]: ...
    def save(self, path: Union[str, PathLike[str]], overwrite: bool = False) -> None: ...
    @staticmethod
    def load(path: Union[str, PathLike[str]]) -> "Model": ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> "Model": ...
    @property
    def coef(self) -> NDArray[np.float64]: ...
    @property
    def intercept(self) -> NDArray[np.float64]: ...
    @property
    def header_json(self) -> str: ...

def fit(
    x: NDArray[np.floating],
    y: NDArray[Any],
    config: Config,
    n_classes: Optional[int] = None,
    warm_coef: Optional[NDArray[np.float64]] = None,
    warm_intercept: Optional[NDArray[np.float64]] = None,
) -> Tuple[Model, str]: ...
def fit_sequence(
    x: NDArray[np.floating],
    y: NDArray[Any],
    config: Config,
    n_classes: Optional[int] = None,
    warm_coef: Optional[NDArray[np.float64]] = None,
) -> Tuple[Model, str]: ...
def path(
    x: NDArray[np.floating],
    y: NDArray[Any],
    config: Config,
    n_classes: Optional[int] = None,
    n_betas: int = 10,
    ratio: float = 0.01,
    betas: Optional[Sequence[float]] = None,
) -> Tuple[float, list[Model], list[str], NDArray[np.float64], NDArray[np.float64]]: ...
def path_sequence(
    x: NDArray[np.floating],
    y: NDArray[Any],
    config: Config,
    n_classes: Optional[int] = None,
    n_betas: int = 10,
    ratio: float = 0.01,
    betas: Optional[Sequence[float]] = None,
) -> Tuple[float, list[Model], list[str], NDArray[np.float64]]: ...
def reads_in_place(x: NDArray[Any]) -> bool: ...
def beta_max(
    x: NDArray[np.floating], y: NDArray[Any], config: Config, n_classes: Optional[int] = None
) -> float: ...
