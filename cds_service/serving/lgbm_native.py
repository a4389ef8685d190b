"""LightGBM through its C API: one-row predictions for the request path.

Why not ``lightgbm.Booster``: importing the ``lightgbm`` package imports scikit-learn, pandas and
SciPy when they are installed (about a second of a worker's start-up), and ``Booster.predict``
spends ~0.1 ms per call on Python-side checks and conversions around a ~10 µs prediction. The
library's own single-row fast path (``LGBM_BoosterPredictForMatSingleRowFast``, configured once
per prediction type with ``num_threads=1``) computes the same raw score and the same TreeSHAP
contributions from the same model text; ``tests/serving/test_lgbm_native.py`` compares both.
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import threading
import weakref
from functools import cache
from pathlib import Path

import numpy as np

_DTYPE_FLOAT64 = 1
_PREDICT_RAW_SCORE = 1
_PREDICT_CONTRIB = 3
_PARAMETERS = b"num_threads=1"


class NativeModelError(RuntimeError):
    """The LightGBM library refused a call (its own message)."""


@cache
def _library() -> ctypes.CDLL:
    """``lib_lightgbm`` from the installed package, found without importing the package."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise NativeModelError("the lightgbm package is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    names = ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll")
    for folder in (package.parent, package / "bin", package / "lib"):  # as lightgbm.libpath
        for name in names:
            if (folder / name).is_file():
                lib = ctypes.cdll.LoadLibrary(str(folder / name))
                lib.LGBM_GetLastError.restype = ctypes.c_char_p
                return lib
    raise NativeModelError(f"no lib_lightgbm in {package}")


def _check(status: int) -> None:
    if status != 0:
        raise NativeModelError(_library().LGBM_GetLastError().decode("utf-8", "replace"))


def _free(handle: ctypes.c_void_p, *configs: ctypes.c_void_p) -> None:
    """The configurations first: they point into the booster."""
    lib = _library()
    for config in configs:
        lib.LGBM_FastConfigFree(config)
    lib.LGBM_BoosterFree(handle)


class NativeBooster:
    """A loaded model and one fast-predict configuration per prediction type. Calls on one
    booster are serialized (shadow scoring runs in worker threads); they take microseconds."""

    def __init__(self, model_text: str) -> None:
        lib = _library()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                model_text.encode("utf-8"), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        count = ctypes.c_int()
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(count)))
        self.num_features = count.value
        self._row_type = ctypes.c_double * self.num_features
        self._lock = threading.Lock()
        self._raw = self._fast_config(_PREDICT_RAW_SCORE)
        self._contrib = self._fast_config(_PREDICT_CONTRIB)
        weakref.finalize(self, _free, self._handle, self._raw, self._contrib)
        self._raw_out = (ctypes.c_double * 1)()
        self._contrib_out = (ctypes.c_double * (self.num_features + 1))()
        # warm: the first prediction of each kind sets up the predictor's buffers, at start-up
        # rather than on a physician's call
        self.raw_score([math.nan] * self.num_features)
        self.contributions([math.nan] * self.num_features)

    def _fast_config(self, predict_type: int) -> ctypes.c_void_p:
        lib = _library()
        config = ctypes.c_void_p()
        _check(
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                ctypes.c_int(predict_type),
                ctypes.c_int(0),  # from the first iteration
                ctypes.c_int(-1),  # to the last
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(self.num_features),
                _PARAMETERS,
                ctypes.byref(config),
            )
        )
        return config

    def feature_names(self) -> list[str]:
        lib = _library()
        size = 256
        while True:
            buffers = [ctypes.create_string_buffer(size) for _ in range(self.num_features)]
            pointers = (ctypes.c_char_p * self.num_features)(
                *[ctypes.cast(b, ctypes.c_char_p) for b in buffers]
            )
            got, needed = ctypes.c_int(), ctypes.c_size_t()
            _check(
                lib.LGBM_BoosterGetFeatureNames(
                    self._handle,
                    ctypes.c_int(self.num_features),
                    ctypes.byref(got),
                    ctypes.c_size_t(size),
                    ctypes.byref(needed),
                    pointers,
                )
            )
            if needed.value <= size:
                return [b.value.decode("utf-8") for b in buffers[: got.value]]
            size = needed.value

    def _predict(self, config: ctypes.c_void_p, vector: list[float], out: ctypes.Array) -> None:  # type: ignore[type-arg]
        if len(vector) != self.num_features:
            raise NativeModelError(f"{len(vector)} values for {self.num_features} features")
        row = self._row_type(*vector)
        length = ctypes.c_int64()
        _check(
            _library().LGBM_BoosterPredictForMatSingleRowFast(
                config, row, ctypes.byref(length), out
            )
        )

    def raw_score(self, vector: list[float]) -> float:
        with self._lock:
            self._predict(self._raw, vector, self._raw_out)
            return float(self._raw_out[0])

    def contributions(self, vector: list[float]) -> np.ndarray:
        """One value per feature, then the expected value (the bias term), as LightGBM."""
        with self._lock:
            self._predict(self._contrib, vector, self._contrib_out)
            return np.array(self._contrib_out, dtype=np.float64)


__all__ = ["NativeBooster", "NativeModelError"]
