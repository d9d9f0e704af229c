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
