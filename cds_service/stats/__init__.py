"""Statistics shared by training, the validation gate and monitoring: one definition of each rule
(bins, subgroups, metrics, drift), pure functions on NumPy arrays, no SQL and no clock."""

from cds_service.stats.arrays import BoolArray, FloatArray, IntArray
from cds_service.stats.bins import (
    CALIBRATION_BINS,
    ReferenceBins,
    calibration_bin_index,
    decile_bins,
    reference_bins,
)
from cds_service.stats.calibration import (
    calibration_bins,
    calibration_curve,
    calibration_in_the_large,
    calibration_slope,
    expected_calibration_error,
    logit,
)
from cds_service.stats.drift import PSI_EPSILON, SAMPLE_SEED, BottomKSample, psi, sample_keys
from cds_service.stats.metrics import binary_metrics
from cds_service.stats.subgroups import (
    DEFAULT_AGE_BANDS,
    feature_subgroup_masks,
    parse_age_bands,
    subgroup_masks,
)

__all__ = [
    "CALIBRATION_BINS",
    "DEFAULT_AGE_BANDS",
    "PSI_EPSILON",
    "SAMPLE_SEED",
    "BoolArray",
    "BottomKSample",
    "FloatArray",
    "IntArray",
    "ReferenceBins",
    "binary_metrics",
    "calibration_bin_index",
    "calibration_bins",
    "calibration_curve",
    "calibration_in_the_large",
    "calibration_slope",
    "decile_bins",
    "expected_calibration_error",
    "feature_subgroup_masks",
    "logit",
    "parse_age_bands",
    "psi",
    "reference_bins",
    "sample_keys",
    "subgroup_masks",
]
