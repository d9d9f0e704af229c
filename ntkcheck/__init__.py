"""ntkcheck: Monte Carlo verification of infinite-width neural network theory."""
from .activations import Activation, custom, get_activation, leaky_relu
from .kernels import kernel_states, nngp_kernel, ntk_kernel, output_kernels
from .networks import empirical_ntk, forward, init_params, sample_dense
from .spec import MLP

__all__ = [
    "MLP", "Activation", "custom", "get_activation", "leaky_relu",
    "nngp_kernel", "ntk_kernel", "output_kernels", "kernel_states",
    "init_params", "forward", "empirical_ntk", "sample_dense",
]
__version__ = "0.1.0"

# --- statistics and check_kernel (issue 4) ---
from . import stats  # noqa: E402
from .check import KernelCheckDesign, KernelSample, check_kernel, design_kernel_check, kernel_test, sample_kernel  # noqa: E402
from .stats import (PowerLawResult, TestResult, covariance_test, gaussianity_test, holm,  # noqa: E402
                    mean_test, n_samples_for_mean, power_law_fit)

__all__ += [
    "stats", "TestResult", "PowerLawResult", "mean_test", "covariance_test", "gaussianity_test",
    "power_law_fit", "holm", "n_samples_for_mean",
    "check_kernel", "sample_kernel", "kernel_test", "design_kernel_check", "KernelCheckDesign", "KernelSample",
]

# sampler (issue 3)
from .sampler import InitSample, sample_init  # noqa: E402

__all__ += ["InitSample", "sample_init"]
# Claims, studies, runner, results store, reports (issue 5)
from .claims import Claim, Convergence, Task, Verdict, all_claims, get_claim
from .runner import run_study
from .studies import Study, StudyError, load_study, make_study

__all__ += ["Claim", "Convergence", "Task", "Verdict", "all_claims", "get_claim",
            "run_study", "Study", "StudyError", "load_study", "make_study"]

# claims at initialization (issue 6): exact layer-norm law and moment helpers
from . import moments  # noqa: E402
from .moments import norm_ratio, norm_ratio_law, readout_variance  # noqa: E402

__all__ += ["moments", "norm_ratio", "norm_ratio_law", "readout_variance"]

# training dynamics (issue 7)
from .data import circle_inputs, digits, gaussian_inputs, sphere_inputs  # noqa: E402
from .linearized import linearized, residual_modes  # noqa: E402
from .train import Trajectory, gradient_descent, gradient_flow, gradient_flow_ode, scaled_lr  # noqa: E402

__all__ += [
    "Trajectory", "gradient_descent", "gradient_flow", "gradient_flow_ode", "scaled_lr",
    "linearized", "residual_modes",
    "gaussian_inputs", "sphere_inputs", "circle_inputs", "digits",
]

# trained-ensemble GP laws (issue 8)
from .gp import coupling_gap, ensemble_map, ensemble_moments  # noqa: E402

__all__ += ["ensemble_map", "ensemble_moments", "coupling_gap"]
