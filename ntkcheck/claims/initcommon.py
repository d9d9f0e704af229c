"""Helpers shared by the claims at initialization (nngp-gaussian, relu-fourth-moment,
ntk-init-convergence, ntk-finite-width): the network of a grid cell, grid checks, figures."""
from __future__ import annotations

from ..axes import log_ticks
from ..spec import MLP
from . import GridError, architectures, grid_cells

#: two-sided 95 % normal quantile, for the plotted intervals
Z95 = 1.959963984540054


def cell_spec(p: dict, sigma_w_factor: float = 1.0) -> MLP:
    """The NTK-parameterized network of a cell (``depth``, ``width``, ``activation``,
    ``sigma_w`` x ``sigma_w_factor``, ``sigma_b``)."""
    return MLP(depth=p["depth"], width=p["width"], activation=p["activation"],
               sigma_w=p["sigma_w"] * sigma_w_factor, sigma_b=p["sigma_b"])


def claim_grid(grid: dict) -> dict:
    """``grid`` without the negative control's widths ``control_width`` (a list, which would
    otherwise be swept as an axis of the claim's cells)."""
    return {k: v for k, v in grid.items() if k != "control_width"}


def mlp_grid(grid: dict) -> dict:
    """The MLP sub-grid of ``grid`` (:func:`ntkcheck.claims.architectures.expand`), whatever
    architectures it sweeps: the negative controls' networks are MLPs."""
    return architectures.expand({**grid, "architecture": ["mlp"]})[0]


def check_cells(grid: dict) -> None:
    """GridError unless every cell of ``grid`` makes a valid network."""
    for cell in grid_cells(claim_grid(grid)):
        try:
            cell_spec(cell)
        except ValueError as err:
            raise GridError("activation", str(err)) from None


def check_blocks(grid: dict, *keys: str) -> None:
    """Each ``grid[key]`` (a number of networks) must split into >= 10 equal blocks of
    ``grid["block"]`` networks, the bootstrap's units."""
    for key in keys:
        if grid[key] % grid["block"] or grid[key] // grid["block"] < 10:
            raise GridError("block", f"{key} must be a multiple of block with >= 10 blocks (bootstrap units)")


def save_figure(fig, path) -> None:
    """Save a claim's figure at the report style's resolution (the caller's rc settings),
    its log axes with tick labels that do not overlap, and close it."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        log_ticks(ax)
    fig.savefig(path)
    plt.close(fig)
