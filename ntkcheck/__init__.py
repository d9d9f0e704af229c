"""ntkcheck: Monte Carlo verification of infinite-width neural network theory.

Every public name is imported from its submodule on first use (a module ``__getattr__``,
PEP 562): ``import ntkcheck`` loads nothing else, so the pytest plugin costs an unrelated test
run nothing and ``ntkcheck.check_kernel`` loads only the sampling and statistics modules.
"""
import importlib
import sys
import types

__version__ = "0.1.0"

#: Public submodules (``ntkcheck.stax.Conv``, ``ntkcheck.stats.holm``).
_MODULES = ("stax", "moments", "stats", "effective")
#: Public name -> the submodule that defines it.
_SOURCES = {
    # networks and kernels
    "MLP": "spec",
    **dict.fromkeys(("Activation", "custom", "get_activation", "leaky_relu"), "activations"),
    **dict.fromkeys(("nngp_kernel", "ntk_kernel", "output_kernels", "kernel_states"), "kernels"),
    **dict.fromkeys(("init_params", "forward", "empirical_ntk"), "networks"),
    **dict.fromkeys(("sample_dense", "InitSample", "sample_init"), "sampler"),
    "to_neural_tangents": "interop",
    # exact finite-width moments (relu-fourth-moment bias, ntk-finite-width)
    **dict.fromkeys(("norm_ratio", "norm_ratio_law", "readout_kernel", "readout_variance",
                     "norm_ratio_bias", "relu_ntk_moments", "relu_ntk_ratio", "relu_ntk_log_ratio_law"), "moments"),
    # statistics and kernel checks (ntkcheck.testing is imported on its own: it is the pytest helpers)
    **dict.fromkeys(("TestResult", "PowerLawResult", "mean_test", "covariance_test", "gaussianity_test",
                     "power_law_fit", "holm", "intercept_test", "n_samples_for_mean"), "stats"),
    **dict.fromkeys(("check_kernel", "sample_kernel", "kernel_test", "design_kernel_check", "KernelCheckDesign",
                     "KernelSample", "candidate_kernel", "default_widths", "stax_widths", "stage_rates",
                     "two_stage_test", "KernelCheckPlan"), "check"),
    # the 1/n effective theory: four-point vertex, NTK covariance, NLO metric
    **dict.fromkeys(("four_point_vertex", "output_cumulant4", "ntk_covariance", "nlo_metric"), "effective"),
    # training
    **dict.fromkeys(("Trajectory", "gradient_descent", "gradient_flow", "gradient_flow_ode", "scaled_lr", "epoch_orders"),
                   "train"),
    **dict.fromkeys(("linearized", "residual_modes"), "linearized"),
    **dict.fromkeys(("ensemble_map", "ensemble_moments", "coupling_gap"), "gp"),
    **dict.fromkeys(("gaussian_inputs", "sphere_inputs", "circle_inputs", "digits"), "data"),
    # claims, studies, runner
    **dict.fromkeys(("Claim", "Convergence", "Task", "Verdict", "all_claims", "get_claim"), "claims"),
    "run_study": "runner",
    **dict.fromkeys(("Study", "StudyError", "load_study", "make_study"), "studies"),
    **dict.fromkeys(("Results", "load_results"), "results"),
}

__all__ = [*_MODULES, *_SOURCES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)      # binds it on the package
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value             # bound once: later look-ups do not come back here
    return value


def __dir__():
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The package module.  Importing a submodule binds it on its package, which would turn
    ``ntkcheck.linearized`` (the function) into the submodule of that name whenever another module
    imports that submodule first: a public name keeps its object."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and name in _SOURCES:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package     # allowed for modules (Python data model, "module attribute access")
