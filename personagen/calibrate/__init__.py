"""calibrate stage: fit persona weights so the weighted panel reproduces survey answer shares.

The face. `fit_weights` (arrays in, FitResult out; options in FitOptions, estimators in ESTIMATORS) is the
fit of docs/design.md §4–§5; `calibrate_library` (CalibrateOptions in, Calibration out) fits a library to a
survey or to census margins and writes LIB/calibrations/NAME.
"""

from personagen.calibrate.constraints import MarginConstraints
from personagen.calibrate.describe import DescribeOptions, describe_calibration, plot_calibration
from personagen.calibrate.design import Design, block_row_weights
from personagen.calibrate.estimate import Estimate, EstimateOptions, conformal_halfwidth, estimate_library
from personagen.calibrate.estimate_plot import plot_estimate
from personagen.calibrate.fit import ESTIMATORS, FitOptions, FitResult, fit_weights
from personagen.calibrate.honesty import honesty_notes
from personagen.calibrate.library import (
    CENSUS_SURVEY_ID,
    CalibrateOptions,
    Calibration,
    Prepared,
    calibrate_library,
)
from personagen.calibrate.names import BASES, METHODS, PULLS, SEARCHES
from personagen.calibrate.replicates import DEFAULT_REPLICATES, REPLICATE_PENALTIES, bootstrap_variance
from personagen.calibration_report import CalibrationReport, ReplicateInfo, read_report

__all__ = [
    "BASES", "CENSUS_SURVEY_ID", "DEFAULT_REPLICATES", "REPLICATE_PENALTIES", "bootstrap_variance", "ESTIMATORS", "METHODS", "PULLS", "SEARCHES",
    "CalibrateOptions", "Estimate", "EstimateOptions", "conformal_halfwidth", "estimate_library", "plot_estimate", "describe_calibration",
    "plot_calibration", "Calibration", "Design", "FitOptions", "FitResult", "MarginConstraints", "Prepared",
    "block_row_weights", "calibrate_library", "fit_weights", "honesty_notes",
    "CalibrationReport", "ReplicateInfo", "read_report", "DescribeOptions",
]
