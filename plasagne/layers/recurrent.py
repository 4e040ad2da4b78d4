"""Recurrent layers on ``pytensor.scan``: custom, vanilla, LSTM and GRU (Lasagne's API).

Inputs are ``(batch, time, features...)``; an optional mask layer gives ``(batch, time)``
with 1 for real steps and 0 for padding (masked steps keep the previous state). Outputs are
``(batch, time, num_units)``, or ``(batch, num_units)`` with ``only_return_final=True``.
Every weight is an ordinary parameter spec, so a PyMC prior makes a Bayesian RNN.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import grad_clip
from pytensor.graph.replace import graph_replace

from .. import init, nonlinearities
from ..utils import ParameterError, int_types, unroll_scan
from .base import Layer, MergeLayer
from .dense import DenseLayer
from .helper import get_all_layers, get_output
from .input import InputLayer

__all__ = ["CustomRecurrentLayer", "RecurrentLayer", "Gate", "LSTMLayer", "GRULayer"]


class _RecurrentBase(MergeLayer):
    """Incoming bookkeeping shared by the recurrent layers: input, mask, initial states.

    Subclasses set ``self._hid_shape`` (the state shape without the batch axis) before
    calling :meth:`_init_state`.
    """

    def __init__(self, incoming: Any, mask_input: Any, inits: dict, **kwargs: Any) -> None:
        # Lasagne's incoming order: input, mask, hid_init, cell_init; -1 marks "not given".
        incomings = [incoming]
        self.mask_incoming_index = -1
        self.hid_init_incoming_index = -1
        if "cell_init" in inits:
            self.cell_init_incoming_index = -1
        if mask_input is not None:
            incomings.append(mask_input)
            self.mask_incoming_index = len(incomings) - 1
        for key, value in inits.items():
            if isinstance(value, Layer):
                incomings.append(value)
                setattr(self, f"{key}_incoming_index", len(incomings) - 1)
        super().__init__(incomings, **kwargs)

    def _set_options(self, **options: Any) -> None:
        for key, value in options.items():
            setattr(self, key, value)
        if isinstance(self.gradient_steps, bool) or not isinstance(self.gradient_steps, int_types):
            raise TypeError(
                f"{self._label()}: gradient_steps must be an integer (-1 for full "
                f"back-propagation through time), found {self.gradient_steps!r}"
            )
        if self.gradient_steps == 0 or self.gradient_steps < -1:
            raise ValueError(
                f"{self._label()}: gradient_steps must be -1 or a positive number of steps, "
                f"found {self.gradient_steps}"
            )
        if not isinstance(self.grad_clipping, Real) or self.grad_clipping < 0:
            raise ValueError(
                f"{self._label()}: grad_clipping must be a number >= 0 (0 disables it), "
                f"found {self.grad_clipping!r}"
            )

    def _check_input(self) -> None:
        shape = self.input_shapes[0]
        if len(shape) < 3:
            raise ValueError(
                f"{self._label()}: input must be (batch, time, features...), got shape {shape}"
            )
        if self.unroll_scan and shape[1] is None:
            raise ValueError(
                f"{self._label()}: unroll_scan=True needs a fixed sequence length (axis 1 of "
                f"the input), got input shape {shape}"
            )
        if self.mask_incoming_index > 0:
            mask_shape = self.input_shapes[self.mask_incoming_index]
            if len(mask_shape) != 2 or any(
                m is not None and s is not None and m != s for m, s in zip(mask_shape, shape)
            ):
                raise ValueError(
                    f"{self._label()}: mask_input must give (batch, time) = {tuple(shape[:2])}, "
                    f"found shape {mask_shape}"
                )

    def _num_inputs(self) -> int:
        shape = self.input_shapes[0]
        if any(s is None for s in shape[2:]):
            raise ValueError(
                f"{self._label()}: the feature sizes (axes 2 and up) must be fixed, got input "
                f"shape {shape}"
            )
        return int(np.prod(shape[2:]))

    def _check_units(self, num_units: Any) -> int:
        if isinstance(num_units, bool) or not isinstance(num_units, int_types) or num_units < 1:
            raise ValueError(
                f"{self._label()}: num_units must be a positive integer, found {num_units!r}"
            )
        return int(num_units)

    def _init_state(self, name: str, spec: Any, learn_init: bool) -> Any:
        """A Layer is used as it is (checked); anything else becomes a ``(1, *state)`` param."""
        if isinstance(spec, Layer):
            found = self.input_shapes[getattr(self, f"{name}_incoming_index")]
            expected = (self.input_shapes[0][0],) + self._hid_shape
            if len(found) != len(expected) or any(
                f is not None and e is not None and f != e for f, e in zip(found, expected)
            ):
                raise ValueError(
                    f"{self._label()}: the layer given as {name} must output (batch, "
                    f"{', '.join(map(str, self._hid_shape))}) = {expected}, found {found}"
                )
            return spec
        return self.add_param(
            spec, (1,) + self._hid_shape, name=name, trainable=learn_init, regularizable=False
        )

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        """``(batch, time) + state`` or, with ``only_return_final``, ``(batch,) + state``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, GRULayer
        >>> GRULayer(InputLayer((None, 7, 3)), 5).get_output_shape_for([(2, 7, 3)])
        (2, 7, 5)
        """
        shape = input_shapes[0]
        if self.only_return_final:
            return (shape[0],) + self._hid_shape
        return (shape[0], shape[1]) + self._hid_shape

    def _split_inputs(self, inputs: list) -> tuple[Any, Any, dict]:
        mask = inputs[self.mask_incoming_index] if self.mask_incoming_index > 0 else None
        given = {}
        for key in ("hid_init", "cell_init"):
            index = getattr(self, f"{key}_incoming_index", -1)
            if index > 0:
                given[key] = inputs[index]
        return inputs[0], mask, given

    def _initial(self, name: str, given: dict, num_batch: Any) -> Any:
        """The initial state for the whole batch: the given layer output or the param repeated."""
        if name in given:
            return given[name]
        param = getattr(self, name)
        if param.ndim == 2:
            return pt.dot(pt.ones((num_batch, 1), dtype=param.dtype), param)
        return pt.repeat(param, num_batch, axis=0)

    def _scan_mask(self, mask: Any) -> Any:
        """``(batch, time)`` -> ``(time, batch, 1, ...)``, broadcasting over the state."""
        return mask.dimshuffle(1, 0, *(["x"] * len(self._hid_shape)))

    def _scan(self, step: Any, sequences: list, outputs_info: list, non_sequences: list) -> list:
        """Run ``step(*sequence_slices, *states, *non_sequences)`` over time.

        Parameters enter the inner graph only as explicit non-sequences: a parameter that
        is an expression (a PyMC random variable, ``exp(log_w)``...) must stay outside the
        scan, or PyMC would find random variables inside its log-probability graph.
        """
        n_seq, k = len(sequences), len(outputs_info)

        def typed_step(*args: Any) -> list:
            # keep each new state's static shape equal to the previous one
            outs = step(*args)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            states = args[n_seq : n_seq + k]
            return [pt.specify_shape(o, p.type.shape) for o, p in zip(outs, states)]

        if self.unroll_scan:
            # like Lasagne, the unrolled loop ignores gradient_steps
            return unroll_scan(
                typed_step,
                sequences,
                outputs_info,
                non_sequences,
                self.input_shapes[0][1],
                self.backwards,
            )
        return pytensor.scan(
            typed_step,
            sequences=sequences,
            outputs_info=outputs_info,
            non_sequences=non_sequences,
            go_backwards=self.backwards,
            truncate_gradient=self.gradient_steps,
            return_updates=False,
            return_list=True,
        )

    def _finish(self, hid_out: Any) -> Any:
        """Scan output ``(time, batch, ...)`` -> the layer's output."""
        if self.only_return_final:
            return hid_out[-1]
        hid_out = hid_out.dimshuffle(1, 0, *range(2, hid_out.ndim))
        if self.backwards:
            hid_out = hid_out[:, ::-1]
        return hid_out


class CustomRecurrentLayer(_RecurrentBase):
    """A recurrent layer built from two layers: ``h_t = f(in(x_t) + hid(h_{t-1}))``.

    The state may have any shape: with convolution layers as ``input_to_hidden`` and
    ``hidden_to_hidden`` this is a convolutional RNN.

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, time, *features)``.
    input_to_hidden : Layer
        Maps one time step ``(batch, *features)`` to ``(batch, *state)``; its network must
        start at exactly one :class:`InputLayer` (with precomputation it receives all
        ``batch * time`` steps at once).
    hidden_to_hidden : Layer
        Maps ``(batch, *state)`` to ``(batch, *state)``.
    nonlinearity : callable or None
        Applied to ``input_to_hidden(x_t) + hidden_to_hidden(h_{t-1})``; None is linear.
    hid_init : parameter spec or Layer
        Initial hidden state: a value, initializer or expression of shape ``(1, *state)``
        (repeated over the batch; learned if ``learn_init``), or a Layer giving
        ``(batch, *state)``, which becomes an extra incoming of this layer.
    backwards : bool
        Process the sequence from the end to the start. The output keeps the input's time
        order (step ``t`` of the output is the state after reading step ``t``).
    learn_init : bool
        Tag the initial states ``trainable``.
    gradient_steps : int
        Truncated back-propagation through time: how many steps the gradient goes back
        (``-1``: all). Ignored with ``unroll_scan=True``, as in Lasagne.
    grad_clipping : float
        If non-zero, the gradient reaching the pre-activations at each step is clipped to
        ``[-grad_clipping, grad_clipping]`` (the forward values are unchanged).
    unroll_scan : bool
        Build a Python-unrolled loop instead of a ``scan`` (needs a fixed sequence length).
    precompute_input : bool
        Apply the input weights to all time steps at once before the loop.
    mask_input : Layer or None
        A layer giving ``(batch, time)``: 1 for real steps, 0 for padding, where the state
        is carried over unchanged.
    only_return_final : bool
        Return only the final state ``(batch, *state)``.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, CustomRecurrentLayer
    >>> l_in = InputLayer((None, 5, 3))
    >>> in_hid = DenseLayer(InputLayer((None, 3)), 4, nonlinearity=None)
    >>> hid_hid = DenseLayer(InputLayer((None, 4)), 4, nonlinearity=None, b=None)
    >>> CustomRecurrentLayer(l_in, in_hid, hid_hid).output_shape
    (None, 5, 4)

    A convolutional RNN over 8x8 single-channel frames with a 2-channel state:

    >>> from plasagne.layers import Conv2DLayer
    >>> l_frames = InputLayer((None, 5, 1, 8, 8))
    >>> conv_in = Conv2DLayer(InputLayer((None, 1, 8, 8)), 2, 3, pad="same", nonlinearity=None)
    >>> conv_hid = Conv2DLayer(InputLayer((None, 2, 8, 8)), 2, 3, pad="same", nonlinearity=None)
    >>> CustomRecurrentLayer(l_frames, conv_in, conv_hid, only_return_final=True).output_shape
    (None, 2, 8, 8)
    """

    def __init__(
        self,
        incoming: Any,
        input_to_hidden: Layer,
        hidden_to_hidden: Layer,
        nonlinearity: Any = nonlinearities.rectify,
        hid_init: Any = init.Constant(0.0),
        backwards: bool = False,
        learn_init: bool = False,
        gradient_steps: int = -1,
        grad_clipping: float = 0,
        unroll_scan: bool = False,
        precompute_input: bool = True,
        mask_input: Any = None,
        only_return_final: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, mask_input, {"hid_init": hid_init}, **kwargs)
        for what, sub in (
            ("input_to_hidden", input_to_hidden),
            ("hidden_to_hidden", hidden_to_hidden),
        ):
            if not isinstance(sub, Layer):
                raise TypeError(f"{self._label()}: {what} must be a Layer, found {sub!r}")
        self.input_to_hidden = input_to_hidden
        self.hidden_to_hidden = hidden_to_hidden
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self._set_options(
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            only_return_final=only_return_final,
        )
        self._check_input()
        in_layers = [lay for lay in get_all_layers(input_to_hidden) if isinstance(lay, InputLayer)]
        if len(in_layers) != 1:
            raise ValueError(
                f"{self._label()}: input_to_hidden must start at exactly one InputLayer, "
                f"found {len(in_layers)}"
            )
        self._in_input = in_layers[0]

        hid_shape = tuple(hidden_to_hidden.output_shape[1:])
        if any(s is None for s in hid_shape):
            raise ValueError(
                f"{self._label()}: the hidden state needs a fixed shape, hidden_to_hidden "
                f"outputs {hidden_to_hidden.output_shape}"
            )
        self._hid_shape = hid_shape
        if tuple(input_to_hidden.output_shape[1:]) != hid_shape:
            raise ValueError(
                f"{self._label()}: input_to_hidden and hidden_to_hidden must agree after the "
                f"batch axis: input_to_hidden outputs {input_to_hidden.output_shape}, "
                f"hidden_to_hidden {hidden_to_hidden.output_shape}"
            )
        for lay in get_all_layers(hidden_to_hidden):
            if isinstance(lay, InputLayer) and tuple(lay.shape[1:]) != hid_shape:
                raise ValueError(
                    f"{self._label()}: hidden_to_hidden must map the state to itself: its "
                    f"input has shape {lay.shape}, its output {hidden_to_hidden.output_shape}"
                )
        step_shape = (None,) + tuple(self.input_shapes[0][2:])
        got = self._in_input.shape
        if len(got) != len(step_shape) or any(
            e is not None and g is not None and e != g for e, g in zip(step_shape, got)
        ):
            raise ValueError(
                f"{self._label()}: input_to_hidden expects step inputs of shape {got}, the "
                f"input gives steps of shape {step_shape}"
            )
        batch, steps = self.input_shapes[0][:2]
        if (
            precompute_input
            and got[0] is not None
            and batch is not None
            and steps is not None
            and got[0] != batch * steps
        ):
            raise ValueError(
                f"{self._label()}: with precompute_input=True, input_to_hidden receives all "
                f"batch * time = {batch * steps} steps at once, but its InputLayer fixes the "
                f"first axis to {got[0]}; use None there"
            )
        if len(hid_shape) == 1:
            self.num_units = hid_shape[0]
        self.hid_init = self._init_state("hid_init", hid_init, learn_init)

    def get_params(self, unwrap_shared: bool = True, **tags: bool) -> list:
        """This layer's parameters followed by those of ``input_to_hidden``/``hidden_to_hidden``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, RecurrentLayer
        >>> l = RecurrentLayer(InputLayer((None, 5, 3)), 4, name="rnn")
        >>> [p.name for p in l.get_params(trainable=True)]
        ['rnn.input_to_hidden.W', 'rnn.input_to_hidden.b', 'rnn.hidden_to_hidden.W']
        """
        from .helper import get_all_params

        params = super().get_params(unwrap_shared=unwrap_shared, **tags)
        for sub in (self.input_to_hidden, self.hidden_to_hidden):
            params += get_all_params(sub, unwrap_shared=unwrap_shared, **tags)
        seen: list = []
        for p in params:
            if not any(p is q for q in seen):
                seen.append(p)
        return seen

    def _inner_params(self) -> list:
        inner_layers = [self.hidden_to_hidden]
        if not self.precompute_input:
            inner_layers.append(self.input_to_hidden)
        params: list = []
        for lay in inner_layers:
            for sub in get_all_layers(lay):
                for p in sub.get_params(unwrap_shared=False):
                    if not any(p is q for q in params):
                        params.append(p)
        return params

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        """Build the recurrence for ``[input, mask?, hid_init?]``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, RecurrentLayer
        >>> l = RecurrentLayer(InputLayer((None, 5, 3)), 4)
        >>> x = pt.tensor3("x")
        >>> l.get_output_for([x]).eval({x: np.ones((2, 5, 3))}).shape
        (2, 5, 4)
        """
        input, mask, given = self._split_inputs(inputs)
        input = input.dimshuffle(1, 0, *range(2, input.ndim))
        seq_len, num_batch = input.shape[0], input.shape[1]
        if self.precompute_input:
            trailing = [input.shape[i] for i in range(2, input.ndim)]
            flat = input.reshape((seq_len * num_batch, *trailing))
            pre = get_output(self.input_to_hidden, {self._in_input: flat}, **kwargs)
            input = pre.reshape((seq_len, num_batch, *self._hid_shape))

        params = self._inner_params()

        def step(input_n: Any, hid_previous: Any, *inner_params: Any) -> Any:
            hid_pre = get_output(self.hidden_to_hidden, hid_previous, **kwargs)
            if not self.precompute_input:
                input_n = get_output(self.input_to_hidden, {self._in_input: input_n}, **kwargs)
            hid_pre = hid_pre + input_n
            if self.grad_clipping:
                hid_pre = grad_clip(hid_pre, -self.grad_clipping, self.grad_clipping)
            out = self.nonlinearity(hid_pre)
            if params:
                out = graph_replace(out, dict(zip(params, inner_params)), strict=False)
            return out

        def step_masked(input_n: Any, mask_n: Any, hid_previous: Any, *inner: Any) -> Any:
            return pt.switch(mask_n, step(input_n, hid_previous, *inner), hid_previous)

        hid_init = self._initial("hid_init", given, num_batch)
        if mask is not None:
            sequences = [input, self._scan_mask(mask)]
            (hid_out,) = self._scan(step_masked, sequences, [hid_init], params)
        else:
            (hid_out,) = self._scan(step, [input], [hid_init], params)
        return self._finish(hid_out)


class RecurrentLayer(CustomRecurrentLayer):
    """A vanilla recurrent layer: ``h_t = f(x_t W_in_to_hid + h_{t-1} W_hid_to_hid + b)``.

    The weights live in two inner :class:`DenseLayer` s named ``<name>.input_to_hidden`` and
    ``<name>.hidden_to_hidden`` (so their parameters are ``<name>.input_to_hidden.W``,
    ``<name>.input_to_hidden.b`` and ``<name>.hidden_to_hidden.W``, as in Lasagne);
    ``W_in_to_hid``, ``W_hid_to_hid`` and ``b`` are also attributes of this layer.

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, time, *features)``; the features are flattened.
    num_units : int
        Number of hidden units.
    W_in_to_hid : parameter spec
        Input weights ``(num_inputs, num_units)``: array, shared variable, any expression
        (e.g. a PyMC random variable) or initializer.
    W_hid_to_hid : parameter spec
        Recurrent weights ``(num_units, num_units)``.
    b : parameter spec or None
        Bias ``(num_units,)``; None for no bias.
    nonlinearity, hid_init, backwards, learn_init, gradient_steps, grad_clipping, \
unroll_scan, precompute_input, mask_input, only_return_final, **kwargs
        As for :class:`CustomRecurrentLayer`.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, RecurrentLayer
    >>> l = RecurrentLayer(InputLayer((None, 6, 3)), 4, only_return_final=True)
    >>> l.output_shape, l.W_hid_to_hid.get_value().shape
    ((None, 4), (4, 4))
    """

    def __init__(
        self,
        incoming: Any,
        num_units: int,
        W_in_to_hid: Any = init.Uniform(),
        W_hid_to_hid: Any = init.Uniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        hid_init: Any = init.Constant(0.0),
        backwards: bool = False,
        learn_init: bool = False,
        gradient_steps: int = -1,
        grad_clipping: float = 0,
        unroll_scan: bool = False,
        precompute_input: bool = True,
        mask_input: Any = None,
        only_return_final: bool = False,
        **kwargs: Any,
    ) -> None:
        input_shape = incoming if isinstance(incoming, tuple) else incoming.output_shape
        name = kwargs.get("name")
        label = f"RecurrentLayer '{name}'" if name else "RecurrentLayer"
        if isinstance(num_units, bool) or not isinstance(num_units, int_types) or num_units < 1:
            raise ValueError(f"{label}: num_units must be a positive integer, found {num_units!r}")
        if len(input_shape) < 3:
            raise ValueError(
                f"{label}: input must be (batch, time, features...), got shape {input_shape}"
            )
        if any(s is None for s in input_shape[2:]):
            raise ValueError(
                f"{label}: the feature sizes (axes 2 and up) must be fixed, got input shape "
                f"{input_shape}"
            )
        base = f"{name}." if name else ""
        # The weights live in inner dense layers; their parameter errors name this layer too.
        try:
            in_to_hid = DenseLayer(
                InputLayer((None,) + tuple(input_shape[2:])),
                num_units,
                W=W_in_to_hid,
                b=b,
                nonlinearity=None,
                name=f"{base}input_to_hidden",
            )
            hid_to_hid = DenseLayer(
                InputLayer((None, num_units)),
                num_units,
                W=W_hid_to_hid,
                b=None,
                nonlinearity=None,
                name=f"{base}hidden_to_hidden",
            )
        except ParameterError as err:
            raise ParameterError(f"{label}: {err}") from None
        self.W_in_to_hid = in_to_hid.W
        self.W_hid_to_hid = hid_to_hid.W
        self.b = in_to_hid.b
        super().__init__(
            incoming,
            in_to_hid,
            hid_to_hid,
            nonlinearity=nonlinearity,
            hid_init=hid_init,
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            mask_input=mask_input,
            only_return_final=only_return_final,
            **kwargs,
        )


class Gate:
    """The parameter specs and nonlinearity of one gate of an LSTM or GRU.

    Parameters
    ----------
    W_in : parameter spec
        Input-to-gate weights ``(num_inputs, num_units)``.
    W_hid : parameter spec
        Hidden-to-gate weights ``(num_units, num_units)``.
    W_cell : parameter spec or None
        Peephole weights ``(num_units,)`` (LSTM only); None for no peephole.
    b : parameter spec
        Bias ``(num_units,)``; e.g. ``Gate(b=init.Constant(1.))`` for an LSTM forget gate.
    nonlinearity : callable or None
        The gate's nonlinearity; None is linear.

    Examples
    --------
    >>> from plasagne import init
    >>> forget = Gate(b=init.Constant(1.0))
    >>> forget.b((2,)).tolist(), Gate(W_cell=None).W_cell is None
    ([1.0, 1.0], True)
    """

    def __init__(
        self,
        W_in: Any = init.Normal(0.1),
        W_hid: Any = init.Normal(0.1),
        W_cell: Any = init.Normal(0.1),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.sigmoid,
    ) -> None:
        self.W_in, self.W_hid, self.W_cell, self.b = W_in, W_hid, W_cell, b
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def __repr__(self) -> str:
        return (
            f"Gate(W_in={self.W_in!r}, W_hid={self.W_hid!r}, W_cell={self.W_cell!r}, "
            f"b={self.b!r}, nonlinearity={self.nonlinearity!r})"
        )


class _GatedLayer(_RecurrentBase):
    """Parameter creation and stacking for layers made of :class:`Gate` s."""

    def _add_gates(self, gates: dict, num_inputs: int) -> None:
        n = self.num_units
        for name, gate in gates.items():
            missing = [a for a in ("W_in", "W_hid", "b", "nonlinearity") if not hasattr(gate, a)]
            if missing:
                raise TypeError(
                    f"{self._label()}: {name} must be a Gate (with W_in, W_hid, W_cell, b, "
                    f"nonlinearity), found {gate!r}"
                )
            setattr(
                self,
                f"W_in_to_{name}",
                self.add_param(gate.W_in, (num_inputs, n), name=f"W_in_to_{name}"),
            )
            setattr(
                self,
                f"W_hid_to_{name}",
                self.add_param(gate.W_hid, (n, n), name=f"W_hid_to_{name}"),
            )
            setattr(
                self,
                f"b_{name}",
                self.add_param(gate.b, (n,), name=f"b_{name}", regularizable=False),
            )
            nonlinearity = gate.nonlinearity
            setattr(
                self,
                f"nonlinearity_{name}",
                nonlinearities.identity if nonlinearity is None else nonlinearity,
            )
        self._gate_names = list(gates)

    def _stacked(self) -> tuple[Any, Any, Any]:
        names = self._gate_names
        W_in = pt.concatenate([getattr(self, f"W_in_to_{g}") for g in names], axis=1)
        W_hid = pt.concatenate([getattr(self, f"W_hid_to_{g}") for g in names], axis=1)
        b = pt.concatenate([getattr(self, f"b_{g}") for g in names], axis=0)
        return W_in, W_hid, b

    def _gate(self, x: Any, n: int) -> Any:
        return x[:, n * self.num_units : (n + 1) * self.num_units]

    def _prepare(self, input: Any) -> tuple[Any, Any, tuple[Any, Any, Any]]:
        if input.ndim > 3:
            input = input.flatten(3)
        input = input.dimshuffle(1, 0, 2)
        W_in, W_hid, b = self._stacked()
        if self.precompute_input:
            input = pt.dot(input, W_in) + b
        return input, input.shape[1], (W_in, W_hid, b)


class LSTMLayer(_GatedLayer):
    """Long short-term memory layer, optionally with peepholes, as in Lasagne.

    With ``x_t`` the input, ``h`` the hidden state, ``c`` the cell and ``σ`` each gate's
    nonlinearity::

        i_t = σ_i(x_t W_in_to_ingate + h_{t-1} W_hid_to_ingate + w_ci * c_{t-1} + b_ingate)
        f_t = σ_f(x_t W_in_to_forgetgate + h_{t-1} W_hid_to_forgetgate + w_cf * c_{t-1}
                  + b_forgetgate)
        c_t = f_t * c_{t-1} + i_t * σ_c(x_t W_in_to_cell + h_{t-1} W_hid_to_cell + b_cell)
        o_t = σ_o(x_t W_in_to_outgate + h_{t-1} W_hid_to_outgate + w_co * c_t + b_outgate)
        h_t = o_t * nonlinearity(c_t)

    where ``w_ci, w_cf, w_co`` are the peepholes ``W_cell_to_ingate``,
    ``W_cell_to_forgetgate`` and ``W_cell_to_outgate`` (absent with ``peepholes=False``).
    The output is ``h``.

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, time, *features)``; the features are flattened.
    num_units : int
        Number of hidden units (and cells).
    ingate, forgetgate, cell, outgate : Gate
        Parameter specs and nonlinearities of each gate. Every spec may be any
        expression, e.g. a PyMC random variable; the forget-gate bias is the
        ``forgetgate`` gate's ``b`` (``Gate(b=init.Constant(1.))`` for a bias of one).
    nonlinearity : callable or None
        Applied to the cell to give the hidden state; None is linear.
    cell_init : parameter spec or Layer
        Initial cell, like ``hid_init``.
    peepholes : bool
        Use the gates' ``W_cell`` as (diagonal) peephole weights.
    hid_init, backwards, learn_init, gradient_steps, grad_clipping, unroll_scan, \
precompute_input, mask_input, only_return_final, **kwargs
        As for :class:`CustomRecurrentLayer`.

    Examples
    --------
    >>> from plasagne import init
    >>> from plasagne.layers import InputLayer, LSTMLayer, Gate
    >>> l = LSTMLayer(InputLayer((None, 7, 3)), 5, forgetgate=Gate(b=init.Constant(1.0)))
    >>> l.output_shape, l.W_cell_to_ingate.get_value().shape, l.b_forgetgate.get_value()[0]
    ((None, 7, 5), (5,), np.float64(1.0))
    """

    def __init__(
        self,
        incoming: Any,
        num_units: int,
        ingate: Gate = Gate(),
        forgetgate: Gate = Gate(),
        cell: Gate = Gate(W_cell=None, nonlinearity=nonlinearities.tanh),
        outgate: Gate = Gate(),
        nonlinearity: Any = nonlinearities.tanh,
        cell_init: Any = init.Constant(0.0),
        hid_init: Any = init.Constant(0.0),
        backwards: bool = False,
        learn_init: bool = False,
        peepholes: bool = True,
        gradient_steps: int = -1,
        grad_clipping: float = 0,
        unroll_scan: bool = False,
        precompute_input: bool = True,
        mask_input: Any = None,
        only_return_final: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            incoming, mask_input, {"hid_init": hid_init, "cell_init": cell_init}, **kwargs
        )
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.num_units = self._check_units(num_units)
        self._hid_shape = (self.num_units,)
        self.peepholes = peepholes
        self._set_options(
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            only_return_final=only_return_final,
        )
        self._check_input()
        num_inputs = self._num_inputs()
        gates = {"ingate": ingate, "forgetgate": forgetgate, "cell": cell, "outgate": outgate}
        self._add_gates(gates, num_inputs)
        if peepholes:
            for name in ("ingate", "forgetgate", "outgate"):
                spec = getattr(gates[name], "W_cell", None)
                if spec is None:
                    raise ValueError(
                        f"{self._label()}: peepholes=True needs {name}.W_cell (the peephole "
                        "weights), found None; pass peepholes=False or give W_cell"
                    )
                setattr(
                    self,
                    f"W_cell_to_{name}",
                    self.add_param(spec, (self.num_units,), name=f"W_cell_to_{name}"),
                )
        self.cell_init = self._init_state("cell_init", cell_init, learn_init)
        self.hid_init = self._init_state("hid_init", hid_init, learn_init)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        """Build the LSTM recurrence for ``[input, mask?, hid_init?, cell_init?]``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, LSTMLayer
        >>> x = pt.tensor3("x")
        >>> out = LSTMLayer(InputLayer((None, 4, 3)), 2).get_output_for([x])
        >>> out.eval({x: np.zeros((1, 4, 3))}).shape
        (1, 4, 2)
        """
        input, mask, given = self._split_inputs(inputs)
        input, num_batch, (W_in, W_hid, b) = self._prepare(input)
        non_seqs = [W_in, W_hid, b]
        if self.peepholes:
            non_seqs += [self.W_cell_to_ingate, self.W_cell_to_forgetgate, self.W_cell_to_outgate]

        def step(
            input_n: Any,
            cell_previous: Any,
            hid_previous: Any,
            W_in: Any,
            W_hid: Any,
            b: Any,
            *peep: Any,
        ) -> list:
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            gates = input_n + pt.dot(hid_previous, W_hid)
            if self.grad_clipping:
                gates = grad_clip(gates, -self.grad_clipping, self.grad_clipping)
            ingate, forgetgate = self._gate(gates, 0), self._gate(gates, 1)
            cell_input, outgate = self._gate(gates, 2), self._gate(gates, 3)
            if self.peepholes:
                w_ci, w_cf, w_co = peep
                ingate = ingate + cell_previous * w_ci
                forgetgate = forgetgate + cell_previous * w_cf
            ingate = self.nonlinearity_ingate(ingate)
            forgetgate = self.nonlinearity_forgetgate(forgetgate)
            cell_input = self.nonlinearity_cell(cell_input)
            cell = forgetgate * cell_previous + ingate * cell_input
            if self.peepholes:
                outgate = outgate + cell * w_co
            outgate = self.nonlinearity_outgate(outgate)
            return [cell, outgate * self.nonlinearity(cell)]

        def step_masked(
            input_n: Any, mask_n: Any, cell_previous: Any, hid_previous: Any, *inner: Any
        ) -> list:
            cell, hid = step(input_n, cell_previous, hid_previous, *inner)
            return [pt.switch(mask_n, cell, cell_previous), pt.switch(mask_n, hid, hid_previous)]

        cell_init = self._initial("cell_init", given, num_batch)
        hid_init = self._initial("hid_init", given, num_batch)
        if mask is not None:
            sequences = [input, self._scan_mask(mask)]
            _, hid_out = self._scan(step_masked, sequences, [cell_init, hid_init], non_seqs)
        else:
            _, hid_out = self._scan(step, [input], [cell_init, hid_init], non_seqs)
        return self._finish(hid_out)


class GRULayer(_GatedLayer):
    """Gated recurrent unit layer, as in Lasagne.

    With ``x_t`` the input, ``h`` the hidden state and ``σ`` each gate's nonlinearity::

        r_t = σ_r(x_t W_in_to_resetgate + h_{t-1} W_hid_to_resetgate + b_resetgate)
        u_t = σ_u(x_t W_in_to_updategate + h_{t-1} W_hid_to_updategate + b_updategate)
        c_t = σ_c(x_t W_in_to_hidden_update + b_hidden_update
                  + r_t * (h_{t-1} W_hid_to_hidden_update))
        h_t = (1 - u_t) * h_{t-1} + u_t * c_t

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, time, *features)``; the features are flattened.
    num_units : int
        Number of hidden units.
    resetgate, updategate, hidden_update : Gate
        Parameter specs and nonlinearities (``W_cell`` is not used). Every spec may be any
        expression, e.g. a PyMC random variable.
    hid_init, backwards, learn_init, gradient_steps, grad_clipping, unroll_scan, \
precompute_input, mask_input, only_return_final, **kwargs
        As for :class:`CustomRecurrentLayer`. ``grad_clipping`` clips the gradients of the
        input and hidden contributions and of the hidden update's pre-activation.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, GRULayer
    >>> l = GRULayer(InputLayer((None, 7, 3)), 5, only_return_final=True)
    >>> l.output_shape, l.W_hid_to_updategate.get_value().shape
    ((None, 5), (5, 5))
    """

    def __init__(
        self,
        incoming: Any,
        num_units: int,
        resetgate: Gate = Gate(W_cell=None),
        updategate: Gate = Gate(W_cell=None),
        hidden_update: Gate = Gate(W_cell=None, nonlinearity=nonlinearities.tanh),
        hid_init: Any = init.Constant(0.0),
        backwards: bool = False,
        learn_init: bool = False,
        gradient_steps: int = -1,
        grad_clipping: float = 0,
        unroll_scan: bool = False,
        precompute_input: bool = True,
        mask_input: Any = None,
        only_return_final: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, mask_input, {"hid_init": hid_init}, **kwargs)
        self.num_units = self._check_units(num_units)
        self._hid_shape = (self.num_units,)
        self._set_options(
            backwards=backwards,
            learn_init=learn_init,
            gradient_steps=gradient_steps,
            grad_clipping=grad_clipping,
            unroll_scan=unroll_scan,
            precompute_input=precompute_input,
            only_return_final=only_return_final,
        )
        self._check_input()
        num_inputs = self._num_inputs()
        self._add_gates(
            {"resetgate": resetgate, "updategate": updategate, "hidden_update": hidden_update},
            num_inputs,
        )
        self.hid_init = self._init_state("hid_init", hid_init, learn_init)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        """Build the GRU recurrence for ``[input, mask?, hid_init?]``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, GRULayer
        >>> x = pt.tensor3("x")
        >>> out = GRULayer(InputLayer((None, 4, 3)), 2).get_output_for([x])
        >>> out.eval({x: np.zeros((1, 4, 3))}).shape
        (1, 4, 2)
        """
        input, mask, given = self._split_inputs(inputs)
        input, num_batch, (W_in, W_hid, b) = self._prepare(input)

        def step(input_n: Any, hid_previous: Any, W_in: Any, W_hid: Any, b: Any) -> Any:
            hid_input = pt.dot(hid_previous, W_hid)
            if self.grad_clipping:
                input_n = grad_clip(input_n, -self.grad_clipping, self.grad_clipping)
                hid_input = grad_clip(hid_input, -self.grad_clipping, self.grad_clipping)
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            resetgate = self.nonlinearity_resetgate(
                self._gate(hid_input, 0) + self._gate(input_n, 0)
            )
            updategate = self.nonlinearity_updategate(
                self._gate(hid_input, 1) + self._gate(input_n, 1)
            )
            hidden_update = self._gate(input_n, 2) + resetgate * self._gate(hid_input, 2)
            if self.grad_clipping:
                hidden_update = grad_clip(hidden_update, -self.grad_clipping, self.grad_clipping)
            hidden_update = self.nonlinearity_hidden_update(hidden_update)
            return (1 - updategate) * hid_previous + updategate * hidden_update

        def step_masked(input_n: Any, mask_n: Any, hid_previous: Any, *inner: Any) -> Any:
            return pt.switch(mask_n, step(input_n, hid_previous, *inner), hid_previous)

        hid_init = self._initial("hid_init", given, num_batch)
        non_seqs = [W_in, W_hid, b]
        if mask is not None:
            sequences = [input, self._scan_mask(mask)]
            (hid_out,) = self._scan(step_masked, sequences, [hid_init], non_seqs)
        else:
            (hid_out,) = self._scan(step, [input], [hid_init], non_seqs)
        return self._finish(hid_out)
