"""Networks of neural-tangents' LayerNorm, FanInConcat, SumPool, GlobalSumPool, ConvTranspose,
ConvLocal and GlobalSelfAttention layers (attention networks and a transformer encoder in the last block), built by the same calls in neural-tangents' ``stax`` and in ``ntkcheck.stax``.

``build(s, act)`` takes either module as ``s`` and its activation constructor as ``act``; this
module imports neither library, so ``scripts/compare_neural_tangents_stax.py``,
``scripts/freeze_reference_kernels.py`` (without ntkcheck) and ``tests/test_references.py``
(without neural-tangents) all build the same networks from it.  Channel counts differ between
concatenated branches on purpose: the kernel of a concatenation weights each branch by them.
"""


def inception(s, act):
    """2-D inception-style blocks: parallel 1x1, 3x3 and pooled branches concatenated over channels,
    then sum pooling and global sum pooling."""
    def block(width):
        return s.serial(s.FanOut(3),
                        s.parallel(s.Conv(width, (1, 1), b_std=0.1),
                                   s.Conv(width // 2, (3, 3), padding="SAME", W_std=1.3),
                                   s.serial(s.SumPool((3, 3), padding="SAME"), s.Conv(width, (1, 1), b_std=0.2))),
                        s.FanInConcat())
    return s.serial(s.Conv(64, (2, 2), W_std=1.4, b_std=0.1), act(), block(64),
                    s.Conv(64, (2, 2), padding="CIRCULAR", W_std=1.2), act(), s.SumPool((2, 2), strides=(2, 2)),
                    s.Conv(32, (1, 1), b_std=0.1), act(), s.GlobalSumPool(), s.Dense(1, W_std=0.8, b_std=0.1))


def layernorm_mlp(s, act):
    """An MLP with LayerNorm after every hidden Dense layer and branches concatenated over channels."""
    return s.serial(s.Dense(64, W_std=1.5, b_std=0.2), s.LayerNorm(), act(),
                    s.FanOut(3), s.parallel(s.Dense(64), s.serial(s.Dense(32, b_std=0.3), act(), s.Dense(48)),
                                            s.Identity()),
                    s.FanInConcat(), s.Dense(64, W_std=1.3), s.LayerNorm(eps=0.1), act(), s.Dense(1, b_std=0.1))


def layernorm_positions(s, act):
    """1-D convolutions with LayerNorm over positions and channels, and branches concatenated
    along the positions."""
    return s.serial(s.Conv(64, (3,), padding="SAME", W_std=1.4, b_std=0.1), s.LayerNorm(axis=(1, 2)), act(),
                    s.FanOut(2), s.parallel(s.Conv(64, (2,), b_std=0.2), s.Conv(64, (3,), padding="CIRCULAR")),
                    s.FanInConcat(axis=1), act(), s.Conv(64, (2,), W_std=1.2), s.LayerNorm(), act(),
                    s.Flatten(), s.Dense(1))


def conv_transpose(s, act):
    """2-D transposed convolutions, VALID and SAME, with strides, both parameterizations."""
    return s.serial(s.ConvTranspose(64, (3, 2), strides=(2, 1), W_std=1.4, b_std=0.1), act(),
                    s.ConvTranspose(64, (2, 3), strides=(1, 2), padding="SAME", W_std=1.2,
                                    parameterization="standard"), act(),
                    s.Conv(64, (2, 2), W_std=1.3), act(), s.GlobalAvgPool(), s.Dense(1, b_std=0.1))


def conv_local(s, act):
    """2-D locally connected layers (unshared weights), VALID and SAME, with strides."""
    return s.serial(s.ConvLocal(64, (2, 2), W_std=1.4, b_std=0.1), act(),
                    s.ConvLocal(64, (3, 1), strides=(1, 2), padding="SAME", W_std=1.2, b_std=0.2), act(),
                    s.Conv(64, (2, 2), padding="CIRCULAR"), act(), s.Flatten(), s.Dense(1, b_std=0.1))


#: name -> (build, one input's shape)
NETWORKS = {"inception": (inception, (6, 6, 3)), "layernorm-mlp": (layernorm_mlp, (5,)),
            "layernorm-positions": (layernorm_positions, (7, 2)), "conv-transpose": (conv_transpose, (3, 3, 2)),
            "conv-local": (conv_local, (5, 4, 2))}
#: activation -> neural-tangents' (and ntkcheck's) constructor name
ACTIVATIONS = {"relu": "Relu", "erf": "Erf"}


# --- attention (GlobalSelfAttention) ------------------------------------------------------------


def attention(mechanism, linear_scaling=True):
    """Dense embedding, attention, act, GlobalAvgPool, Dense readout."""
    def build(s, act):
        return s.serial(s.Dense(64, W_std=1.3, b_std=0.1),
                        s.GlobalSelfAttention(64, 64, 64, 2, linear_scaling=linear_scaling, W_key_std=1.2,
                                              W_value_std=0.9, W_query_std=0.8, W_out_std=1.1, b_std=0.1,
                                              attention_mechanism=mechanism),
                        act(), s.GlobalAvgPool(), s.Dense(1, W_std=1.2, b_std=0.1))
    return build


def _residual(s, *layers):
    return s.serial(s.FanOut(2), s.parallel(s.serial(*layers), s.Identity()), s.FanInSum())


def residual_attention(s, act, blocks=2, width=64):
    """Dense embedding, then per block a residual attention block and a residual MLP block (no
    LayerNorm), GlobalAvgPool, Dense readout."""
    block = [_residual(s, s.GlobalSelfAttention(width, width, width, 4, W_key_std=1.5, b_std=0.1)),
             _residual(s, act(), s.Dense(width, W_std=1.2, b_std=0.1), act(), s.Dense(width, b_std=0.1))]
    return s.serial(s.Dense(width, W_std=1.3), *block * blocks, s.GlobalAvgPool(), s.Dense(1, b_std=0.1))


def transformer(s, act, blocks=2, width=64):
    """A pre-LayerNorm transformer encoder: Dense embedding, per block a residual LayerNorm ->
    softmax attention (linear scaling) and a residual LayerNorm -> MLP, a final LayerNorm,
    GlobalAvgPool, Dense readout."""
    block = [_residual(s, s.LayerNorm(), s.GlobalSelfAttention(width, width, width, 4, W_key_std=1.5,
                                                               W_out_std=1.2, b_std=0.1)),
             _residual(s, s.LayerNorm(), s.Dense(width, W_std=1.4, b_std=0.1), act(), s.Dense(width, b_std=0.1))]
    return s.serial(s.Dense(width, W_std=1.3, b_std=0.1), *block * blocks, s.LayerNorm(), s.GlobalAvgPool(),
                    s.Dense(1, b_std=0.1))


ATTENTION_NETWORKS = {**{f"attention-{m.lower()}": (attention(m), (6, 3))
                         for m in ("SOFTMAX", "IDENTITY", "RELU", "ABS")},
                      "attention-identity-sqrt": (attention("IDENTITY", False), (6, 3)),
                      "attention-2d": (attention("SOFTMAX"), (3, 2, 3)),
                      "residual-attention": (residual_attention, (5, 3)),
                      "transformer": (transformer, (5, 3))}
NETWORKS.update(ATTENTION_NETWORKS)

# --- end of attention ---------------------------------------------------------------------------
