"""The widths of a network: its layers, its hidden affine layers and :func:`with_width`."""
from __future__ import annotations

from dataclasses import replace

from .attention import GlobalSelfAttention
from .branching import FanInConcat, FanInSum, FanOut
from .combinators import Parallel, Serial
from .layer import Layer, _check_positive_int
from .linear import Dense


def layers(net: Layer):
    """Every layer of ``net``, depth first, with ``serial`` and ``parallel`` expanded."""
    if isinstance(net, (Serial, Parallel)):
        for layer in net.layers:
            yield from layers(layer)
    else:
        yield net


def with_width(net: Layer, n: int) -> Layer:
    """The same network with every hidden channel count (``Dense.out_dim``, ``out_chan`` of Conv,
    ConvLocal and ConvTranspose, ``GlobalSelfAttention``'s ``n_chan_out``, ``n_chan_key`` and
    ``n_chan_val``, not its heads) set to ``n``; the readout -- the affine layers whose output
    reaches the network's output through parameter-free layers only -- keeps its size.  The
    infinite-width limit takes all hidden channel counts to infinity together (Novak et al.
    2019; Yang 2019); this is one path of that limit, and the one ``check_kernel`` extrapolates
    along."""
    _check_positive_int(net, "n", n)
    hidden = _width_flow(net)[0]
    return _rebuild(net, (), hidden, int(n))


def depth(net: Layer) -> int:
    """L, the number of hidden affine layers (those :func:`with_width` scales), branches included."""
    return len(_width_flow(net)[0])


def fan_in_scaled(net: Layer) -> list[Layer]:
    """The affine layers whose fan-in grows with the width (they read a hidden layer's output)."""
    hidden, _, fed = _width_flow(net)
    return [_layer_at(net, path) for path, sources in fed.items() if sources & hidden]


def _width_flow(net: Layer) -> tuple[frozenset, frozenset, dict]:
    """(hidden, readout, fed): the affine layers by their path in the network tree, and for each
    the sources it reads.  A source is an affine layer (or the input, path None) whose channels a
    value carries unchanged; the readout are the sources of the output."""
    fed: dict = {}
    out = _flow(net, frozenset({None}), (), fed)
    if isinstance(out, tuple):
        raise ValueError(f"the network ends with {len(out)} branches: join them with FanInSum()")
    readout = out - {None}
    for path, sources in fed.items():
        if sources & readout:
            raise ValueError(f"{_layer_at(net, min(sources & readout))!r} is the readout and also feeds "
                             f"{_layer_at(net, path)!r}: its channel count can neither grow (it sets the "
                             "output's size) nor stay fixed (it is a hidden layer)")
    return frozenset(fed) - readout, readout, fed


def _flow(layer, sources, path, fed):
    if layer.affine:
        fed[path] = _single(layer, sources)
        return frozenset({path})
    if isinstance(layer, Serial):
        for i, sub in enumerate(layer.layers):
            sources = _flow(sub, sources, path + (i,), fed)
        return sources
    if isinstance(layer, Parallel):
        if not isinstance(sources, tuple) or len(sources) != len(layer.layers):
            got = len(sources) if isinstance(sources, tuple) else 1
            layer._fail(f"has {len(layer.layers)} layers but got {got} branches")
        return tuple(_flow(sub, s, path + (i,), fed) for i, (sub, s) in enumerate(zip(layer.layers, sources)))
    if isinstance(layer, FanOut):
        return (_single(layer, sources),) * layer.num
    if isinstance(layer, (FanInSum, FanInConcat)):
        if not isinstance(sources, tuple):
            layer._fail("expected branches (after FanOut and parallel), got a single input")
        return frozenset().union(*sources)
    return _single(layer, sources)


def _single(layer, sources):
    if isinstance(sources, tuple):
        layer._fail(f"got {len(sources)} branches (FanOut without FanInSum); expected one input")
    return sources


def _layer_at(net, path):
    for i in path:
        net = net.layers[i]
    return net


def _rebuild(layer, path, hidden, n):
    if isinstance(layer, GlobalSelfAttention):      # keys and values are hidden even in a readout; heads stay
        return replace(layer, n_chan_key=n, n_chan_val=n, n_chan_out=n if path in hidden else layer.n_chan_out)
    if path in hidden:
        return replace(layer, **{"out_dim" if isinstance(layer, Dense) else "out_chan": n})
    if isinstance(layer, (Serial, Parallel)):
        return replace(layer, layers=tuple(_rebuild(sub, path + (i,), hidden, n) for i, sub in enumerate(layer.layers)))
    return layer

