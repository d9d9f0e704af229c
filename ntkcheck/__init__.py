"""ntkcheck: Monte Carlo verification of infinite-width neural network theory."""
from . import moments, stats
from .activations import Activation, custom, get_activation, leaky_relu
from .check import KernelCheckDesign, KernelSample, check_kernel, design_kernel_check, kernel_test, sample_kernel
from .claims import Claim, Convergence, Task, Verdict, all_claims, get_claim
from .data import circle_inputs, digits, gaussian_inputs, sphere_inputs
from .gp import coupling_gap, ensemble_map, ensemble_moments
from .kernels import kernel_states, nngp_kernel, ntk_kernel, output_kernels
from .linearized import linearized, residual_modes
from .moments import norm_ratio, norm_ratio_law, readout_kernel, readout_variance
from .networks import empirical_ntk, forward, init_params
from .results import Results, load_results
from .runner import run_study
from .sampler import InitSample, sample_dense, sample_init
from .spec import MLP
from .stats import (PowerLawResult, TestResult, covariance_test, gaussianity_test, holm, intercept_test,
                    mean_test, n_samples_for_mean, power_law_fit)
from .studies import Study, StudyError, load_study, make_study
from .train import Trajectory, epoch_orders, gradient_descent, gradient_flow, gradient_flow_ode, scaled_lr

__all__ = [
    # networks and kernels
    "MLP", "Activation", "custom", "get_activation", "leaky_relu",
    "nngp_kernel", "ntk_kernel", "output_kernels", "kernel_states",
    "init_params", "forward", "empirical_ntk", "sample_dense", "InitSample", "sample_init",
    "moments", "norm_ratio", "norm_ratio_law", "readout_kernel", "readout_variance",
    # statistics and kernel checks
    "stats", "TestResult", "PowerLawResult", "mean_test", "covariance_test", "gaussianity_test",
    "power_law_fit", "holm", "intercept_test", "n_samples_for_mean",
    "check_kernel", "sample_kernel", "kernel_test", "design_kernel_check", "KernelCheckDesign", "KernelSample",
    # training
    "Trajectory", "gradient_descent", "gradient_flow", "gradient_flow_ode", "scaled_lr", "epoch_orders",
    "linearized", "residual_modes", "ensemble_map", "ensemble_moments", "coupling_gap",
    "gaussian_inputs", "sphere_inputs", "circle_inputs", "digits",
    # claims, studies, runner
    "Claim", "Convergence", "Task", "Verdict", "all_claims", "get_claim",
    "run_study", "Study", "StudyError", "load_study", "make_study", "Results", "load_results",
]

# architectures beyond the MLP: neural-tangents-style layers (use as ``ntkcheck.stax.Conv`` etc.)
from . import stax  # noqa: E402

__all__ += ["stax"]
__version__ = "0.1.0"

# exact finite-width moments (relu-fourth-moment bias, ntk-finite-width)
from .moments import norm_ratio_bias, relu_ntk_log_ratio_law, relu_ntk_moments, relu_ntk_ratio  # noqa: E402

__all__ += ["norm_ratio_bias", "relu_ntk_moments", "relu_ntk_ratio", "relu_ntk_log_ratio_law"]

# check_kernel's pairs design and candidate validation (ntkcheck.testing is imported on its own: it defines a
# pytest fixture when pytest is installed)
from .check import candidate_kernel, default_widths  # noqa: E402

__all__ += ["candidate_kernel", "default_widths"]

# the 1/n effective theory: four-point vertex, NTK covariance, NLO metric
from . import effective  # noqa: E402
from .effective import four_point_vertex, nlo_metric, ntk_covariance, output_cumulant4  # noqa: E402

__all__ += ["effective", "four_point_vertex", "output_cumulant4", "ntk_covariance", "nlo_metric"]
