"""Recurrent layers on ``pytensor.scan``: custom, vanilla, LSTM and GRU (Lasagne's API).

Inputs are ``(batch, time, features...)``; an optional mask layer gives ``(batch, time)``
with 1 for real steps and 0 for padding (masked steps keep the previous state). Outputs are
``(batch, time, num_units)``, or ``(batch, num_units)`` with ``only_return_final=True``.
Every weight is an ordinary parameter spec, so a PyMC prior makes a Bayesian RNN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import grad_clip
from pytensor.graph.replace import graph_replace

from .. import init, nonlinearities
from ..utils import unroll_scan
from .base import Layer, MergeLayer
from .dense import DenseLayer
from .helper import get_all_layers, get_output
from .input import InputLayer

__all__ = ["CustomRecurrentLayer", "RecurrentLayer", "Gate", "LSTMLayer", "GRULayer"]


class _RecurrentBase(MergeLayer):
    """Incoming bookkeeping shared by the recurrent layers: input, mask, initial states."""

    _init_names: tuple[str, ...] = ("hid_init",)

    def __init__(self, incoming: Any, mask_input: Any, inits: dict, **kwargs: Any) -> None:
        incomings = [incoming]
        self.mask_incoming_index = -1
        if mask_input is not None:
            incomings.append(mask_input)
            self.mask_incoming_index = len(incomings) - 1
        self._init_index: dict[str, int] = {}
        for key, value in inits.items():
            if isinstance(value, Layer):
                incomings.append(value)
                self._init_index[key] = len(incomings) - 1
        super().__init__(incomings, **kwargs)

    def _check_input(self) -> None:
        shape = self.input_shapes[0]
        if len(shape) < 3:
            raise ValueError(
                f"{self._label()}: input must be (batch, time, features...), got shape {shape}"
            )
        if self.unroll_scan and shape[1] is None:
            raise ValueError(f"{self._label()}: unroll_scan needs a fixed sequence length")

    def _init_state(self, name: str, spec: Any, num_units: int, learn_init: bool) -> Any:
        if isinstance(spec, Layer):
            return spec
        return self.add_param(
            spec, (1, num_units), name=name, trainable=learn_init, regularizable=False
        )

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        shape = input_shapes[0]
        if self.only_return_final:
            return (shape[0], self.num_units)
        return (shape[0], shape[1], self.num_units)

    def _split_inputs(self, inputs: list) -> tuple[Any, Any, dict]:
        mask = inputs[self.mask_incoming_index] if self.mask_incoming_index > 0 else None
        inits = {k: inputs[i] for k, i in self._init_index.items()}
        return inputs[0], mask, inits

    def _initial(self, name: str, given: dict, num_batch: Any) -> Any:
        if name in given:
            return given[name]
        param = getattr(self, name)
        return pt.dot(pt.ones((num_batch, 1), dtype=param.dtype), param)

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
        if self.only_return_final:
            return hid_out[-1]
        hid_out = hid_out.dimshuffle(1, 0, *range(2, hid_out.ndim))
        if self.backwards:
            hid_out = hid_out[:, ::-1]
        return hid_out


class CustomRecurrentLayer(_RecurrentBase):
    """A recurrent layer built from two layers: ``h_t = f(in(x_t) + hid(h_{t-1}))``.

    Parameters
    ----------
    incoming : Layer
        Input ``(batch, time, *features)``.
    input_to_hidden : Layer
        Maps one time step ``(batch, *features)`` to ``(batch, num_units)``; its input must
        be an :class:`InputLayer`.
    hidden_to_hidden : Layer
        Maps ``(batch, num_units)`` to ``(batch, num_units)``.
    nonlinearity, hid_init, backwards, learn_init, gradient_steps, grad_clipping,
    unroll_scan, precompute_input, mask_input, only_return_final
        As in Lasagne: ``hid_init`` is a value/initializer (learnable with ``learn_init``),
        an expression, or a Layer giving ``(batch, num_units)``; ``gradient_steps`` truncates
        back-propagation through time; ``grad_clipping`` clips the gradient of the
        pre-activation; ``precompute_input`` applies ``input_to_hidden`` to all steps at
        once before the scan.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, CustomRecurrentLayer
    >>> l_in = InputLayer((None, 5, 3))
    >>> in_hid = DenseLayer(InputLayer((None, 3)), 4, nonlinearity=None)
    >>> hid_hid = DenseLayer(InputLayer((None, 4)), 4, nonlinearity=None, b=None)
    >>> CustomRecurrentLayer(l_in, in_hid, hid_hid).output_shape
    (None, 5, 4)
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
        self.input_to_hidden = input_to_hidden
        self.hidden_to_hidden = hidden_to_hidden
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.backwards, self.learn_init = backwards, learn_init
        self.gradient_steps, self.grad_clipping = gradient_steps, grad_clipping
        self.unroll_scan, self.precompute_input = unroll_scan, precompute_input
        self.only_return_final = only_return_final
        self._check_input()
        in_layers = [lay for lay in get_all_layers(input_to_hidden) if isinstance(lay, InputLayer)]
        if len(in_layers) != 1:
            raise ValueError(f"{self._label()}: input_to_hidden must have exactly one InputLayer")
        self._in_input = in_layers[0]
        self.num_units = hidden_to_hidden.output_shape[-1]
        if input_to_hidden.output_shape[-1] != self.num_units:
            raise ValueError(
                f"{self._label()}: input_to_hidden outputs {input_to_hidden.output_shape[-1]} "
                f"units but hidden_to_hidden {self.num_units}; they must agree"
            )
        expected = (None,) + tuple(self.input_shapes[0][2:])
        got = self._in_input.shape
        if any(e is not None and g is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(
                f"{self._label()}: input_to_hidden expects step inputs of shape {got}, the "
                f"input gives {expected}"
            )
        self.hid_init = self._init_state("hid_init", hid_init, self.num_units, learn_init)

    def get_params(self, unwrap_shared: bool = True, **tags: bool) -> list:
        from .helper import get_all_params

        params = super().get_params(unwrap_shared=unwrap_shared, **tags)
        for sub in (self.input_to_hidden, self.hidden_to_hidden):
            params += get_all_params(sub, unwrap_shared=unwrap_shared, **tags)
        seen: list = []
        for p in params:
            if not any(p is q for q in seen):
                seen.append(p)
        return seen

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, mask, given = self._split_inputs(inputs)
        input = input.dimshuffle(1, 0, *range(2, input.ndim))
        seq_len, num_batch = input.shape[0], input.shape[1]
        if self.precompute_input:
            flat = input.reshape(
                (seq_len * num_batch, *[input.shape[i] for i in range(2, input.ndim)])
            )
            pre = get_output(self.input_to_hidden, {self._in_input: flat}, **kwargs)
            input = pre.reshape((seq_len, num_batch, self.num_units))

        inner_layers = [self.hidden_to_hidden]
        if not self.precompute_input:
            inner_layers.append(self.input_to_hidden)
        params = [
            p
            for lay in inner_layers
            for sub in get_all_layers(lay)
            for p in sub.get_params(unwrap_shared=False)
        ]

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
            mask = mask.dimshuffle(1, 0, "x")
            (hid_out,) = self._scan(step_masked, [input, mask], [hid_init], params)
        else:
            (hid_out,) = self._scan(step, [input], [hid_init], params)
        return self._finish(hid_out)


class RecurrentLayer(CustomRecurrentLayer):
    """A vanilla recurrent layer: ``h_t = f(x_t W_in_to_hid + h_{t-1} W_hid_to_hid + b)``.

    The weights live in two inner dense layers, named ``<name>.input_to_hidden`` and
    ``<name>.hidden_to_hidden``; ``W_in_to_hid``, ``W_hid_to_hid`` and ``b`` are also
    attributes of this layer.

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
        base = f"{name}." if name else ""
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
    """The parameters of one gate of an LSTM or GRU.

    Parameters
    ----------
    W_in, W_hid : parameter specs
        Input-to-gate ``(num_inputs, num_units)`` and hidden-to-gate ``(num_units,
        num_units)`` weights.
    W_cell : parameter spec or None
        Peephole weights ``(num_units,)`` (LSTM only); None for no peephole.
    b : parameter spec
        Bias ``(num_units,)``; e.g. ``Gate(b=init.Constant(1.))`` for an LSTM forget gate.
    nonlinearity : callable

    Examples
    --------
    >>> Gate(W_cell=None).W_cell is None
    True
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


class _GatedLayer(_RecurrentBase):
    """Parameter creation and stacking for layers made of :class:`Gate` s."""

    def _add_gates(self, gates: dict, num_inputs: int, peepholes: bool) -> None:
        n = self.num_units
        for name, gate in gates.items():
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
            setattr(self, f"nonlinearity_{name}", gate.nonlinearity)
        self._gate_names = list(gates)

    def _stacked(self) -> tuple[Any, Any, Any]:
        names = self._gate_names
        W_in = pt.concatenate([getattr(self, f"W_in_to_{g}") for g in names], axis=1)
        W_hid = pt.concatenate([getattr(self, f"W_hid_to_{g}") for g in names], axis=1)
        b = pt.concatenate([getattr(self, f"b_{g}") for g in names], axis=0)
        return W_in, W_hid, b

    def _gate(self, x: Any, n: int) -> Any:
        return x[:, n * self.num_units : (n + 1) * self.num_units]

    def _prepare(self, input: Any) -> tuple[Any, Any, Any, tuple[Any, Any, Any]]:
        if input.ndim > 3:
            input = input.flatten(3)
        input = input.dimshuffle(1, 0, 2)
        W_in, W_hid, b = self._stacked()
        if self.precompute_input:
            input = pt.dot(input, W_in) + b
        return input, input.shape[0], input.shape[1], (W_in, W_hid, b)


class LSTMLayer(_GatedLayer):
    """Long short-term memory layer (with optional peepholes), as in Lasagne.

    ``i, f, o = gates(x_t, h_{t-1}[, c_{t-1}])``, ``c_t = f c_{t-1} + i g(x_t, h_{t-1})``,
    ``h_t = o * nonlinearity(c_t)``. Parameters are named ``W_in_to_ingate``,
    ``W_hid_to_forgetgate``, ``b_cell``, ``W_cell_to_outgate``... (four gates: ``ingate``,
    ``forgetgate``, ``cell``, ``outgate``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, LSTMLayer
    >>> l = LSTMLayer(InputLayer((None, 7, 3)), 5)
    >>> l.output_shape, l.W_cell_to_ingate.get_value().shape
    ((None, 7, 5), (5,))
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
        self.num_units = int(num_units)
        self.backwards, self.learn_init, self.peepholes = backwards, learn_init, peepholes
        self.gradient_steps, self.grad_clipping = gradient_steps, grad_clipping
        self.unroll_scan, self.precompute_input = unroll_scan, precompute_input
        self.only_return_final = only_return_final
        self._check_input()
        shape = self.input_shapes[0]
        if any(s is None for s in shape[2:]):
            raise ValueError(f"{self._label()}: the feature sizes must be fixed, got {shape}")
        num_inputs = int(np.prod(shape[2:]))
        gates = {"ingate": ingate, "forgetgate": forgetgate, "cell": cell, "outgate": outgate}
        self._add_gates(gates, num_inputs, peepholes)
        if peepholes:
            for name in ("ingate", "forgetgate", "outgate"):
                spec = gates[name].W_cell
                if spec is None:
                    raise ValueError(f"{self._label()}: peepholes=True needs {name}.W_cell")
                setattr(
                    self,
                    f"W_cell_to_{name}",
                    self.add_param(spec, (self.num_units,), name=f"W_cell_to_{name}"),
                )
        self.cell_init = self._init_state("cell_init", cell_init, self.num_units, learn_init)
        self.hid_init = self._init_state("hid_init", hid_init, self.num_units, learn_init)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, mask, given = self._split_inputs(inputs)
        input, seq_len, num_batch, (W_in, W_hid, b) = self._prepare(input)

        peeps = (
            [self.W_cell_to_ingate, self.W_cell_to_forgetgate, self.W_cell_to_outgate]
            if self.peepholes
            else [None, None, None]
        )
        non_seqs = [W_in, W_hid, b] + (peeps if self.peepholes else [])

        def step(
            input_n: Any,
            cell_previous: Any,
            hid_previous: Any,
            W_in: Any,
            W_hid: Any,
            b: Any,
            *peep: Any,
        ) -> list:
            w_ci, w_cf, w_co = peep if self.peepholes else (None, None, None)
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            gates = input_n + pt.dot(hid_previous, W_hid)
            if self.grad_clipping:
                gates = grad_clip(gates, -self.grad_clipping, self.grad_clipping)
            ingate, forgetgate = self._gate(gates, 0), self._gate(gates, 1)
            cell_input, outgate = self._gate(gates, 2), self._gate(gates, 3)
            if self.peepholes:
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
            mask = mask.dimshuffle(1, 0, "x")
            _, hid_out = self._scan(step_masked, [input, mask], [cell_init, hid_init], non_seqs)
        else:
            _, hid_out = self._scan(step, [input], [cell_init, hid_init], non_seqs)
        return self._finish(hid_out)


class GRULayer(_GatedLayer):
    """Gated recurrent unit layer, as in Lasagne.

    ``r, u = gates(x_t, h_{t-1})``, ``c = f(x_t W_xc + b_c + r * (h_{t-1} W_hc))``,
    ``h_t = (1 - u) h_{t-1} + u c``. Parameters ``W_in_to_resetgate``,
    ``W_hid_to_updategate``, ``b_hidden_update``...

    Examples
    --------
    >>> from plasagne.layers import InputLayer, GRULayer
    >>> GRULayer(InputLayer((None, 7, 3)), 5, only_return_final=True).output_shape
    (None, 5)
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
        self.num_units = int(num_units)
        self.backwards, self.learn_init = backwards, learn_init
        self.gradient_steps, self.grad_clipping = gradient_steps, grad_clipping
        self.unroll_scan, self.precompute_input = unroll_scan, precompute_input
        self.only_return_final = only_return_final
        self._check_input()
        shape = self.input_shapes[0]
        if any(s is None for s in shape[2:]):
            raise ValueError(f"{self._label()}: the feature sizes must be fixed, got {shape}")
        num_inputs = int(np.prod(shape[2:]))
        self._add_gates(
            {"resetgate": resetgate, "updategate": updategate, "hidden_update": hidden_update},
            num_inputs,
            peepholes=False,
        )
        self.hid_init = self._init_state("hid_init", hid_init, self.num_units, learn_init)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, mask, given = self._split_inputs(inputs)
        input, seq_len, num_batch, (W_in, W_hid, b) = self._prepare(input)

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
        if mask is not None:
            mask = mask.dimshuffle(1, 0, "x")
            (hid_out,) = self._scan(step_masked, [input, mask], [hid_init], [W_in, W_hid, b])
        else:
            (hid_out,) = self._scan(step, [input], [hid_init], [W_in, W_hid, b])
        return self._finish(hid_out)
