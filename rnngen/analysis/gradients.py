"""Backpropagation through time, measured: how far back does the gradient reach?

For one window of L tokens and the loss at the last step only (as in the lecture's derivation),
`profile()` measures, for every earlier time step t:
  - ||dL_T / dh_t||: the gradient that reaches the hidden state t steps back, and
  - ||dh_T / dh_t||_F: the norm of the Jacobian product dh_T/dh_{T-1} ... dh_{t+1}/dh_t, the factor
    the lecture shows vanishing (or exploding) as the distance T - t grows.
For the vanilla RNN that product is bounded by (||W_h||_2 * max|1 - tanh^2|)^(T-t), so the profile
also reports the spectral norm of W_h and the mean of (1 - tanh^2) over the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnngen.models import RecurrentLM
from rnngen.models.state import hidden_of

VANISHED = 1e-3


@dataclass
class GradientProfile:
    """Norms indexed by distance d = T - t (d = 0 is the last step)."""

    label: str
    loss_grad: list[float]
    jacobian: list[float]
    spectral_norm: float | None = None
    tanh_slope: float | None = None

    @property
    def vanish_distance(self) -> int | None:
        """The first distance at which ||dL/dh_t|| falls below 1e-3 of its value at t = T."""
        return next((d for d, g in enumerate(self.loss_grad) if g < VANISHED * self.loss_grad[0]), None)


def _unroll(model: RecurrentLM, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Run the layers one step at a time: the last output (h_T of the top layer), for every earlier step the state
    tensor the next step reads (h_t of every layer), and the list a backward pass then fills with the gradients of
    the top layer's h_t, from t = T back to t = 1.

    Python hooks fill that list rather than `retain_grad`: a backward pass is one call into torch, and the hooks run
    Python at every step back, where a SIGTERM or Ctrl-C is acted on (rnngen.interrupts); without them a signal
    waited for the whole pass, minutes for a long window."""
    x = model.embedding(ids)
    steps = ids.size(1)
    grads: list[torch.Tensor] = [torch.empty(0)] * steps
    state, states = None, []
    for t in range(steps):
        out, state = model.rnn(x[:, t : t + 1], state)
        if t < steps - 1:  # h_T is read by no later step: its gradient is the last output's
            h = hidden_of(state)
            h.register_hook(_keeper(grads, steps - 1 - t, top_layer=True))
            states.append(h)
    last = out[:, -1]
    last.register_hook(_keeper(grads, 0, top_layer=False))
    return last, states, grads


def _keeper(grads: list[torch.Tensor], distance: int, top_layer: bool) -> Callable[[torch.Tensor], None]:
    """A hook that keeps the gradient it is given (the top layer's, of a state of every layer) at `distance`."""

    def keep(grad: torch.Tensor) -> None:
        grads[distance] = grad[-1] if top_layer else grad

    return keep


def profile(
    model: RecurrentLM,
    ids: torch.Tensor,
    label: str,
    probes: int = 32,
    seed: int = 0,
    loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> GradientProfile:
    """Measure the gradient profile of `model` on `ids` [L + 1] (inputs and the last target). `loss`, given the
    logits of the last step, replaces the next-token cross-entropy: for a model whose inputs are not token ids
    (rows of `ids` are then its input vectors, and the last row is not read)."""
    model.eval()  # no dropout: the measurement is of the network, not of a random mask
    inputs, target = ids[None, :-1], ids[None, -1]
    last, _, grads = _unroll(model, inputs)
    if loss is None:
        F.cross_entropy(model.logits(last), target).backward()
    else:
        loss(model.logits(last)).backward()
    loss_grad = [grad.norm().item() for grad in grads]
    # ||J||_F^2 = E ||v^T J||^2 for v ~ N(0, I): one backward pass over `probes` copies of the window.
    model.zero_grad(set_to_none=True)
    last, states, grads = _unroll(model, inputs.expand(probes, *inputs.shape[1:]))
    generator = torch.Generator(device=ids.device).manual_seed(seed)
    probe = torch.randn(last.shape, generator=generator, device=ids.device)
    last.backward(probe)
    jacobian = [grad.square().sum(-1).mean().sqrt().item() for grad in grads]
    model.zero_grad(set_to_none=True)
    result = GradientProfile(label, loss_grad, jacobian)
    if model.config.kind == "rnn":
        w_hh = getattr(model.rnn, f"weight_hh_l{model.config.layers - 1}")
        result.spectral_norm = torch.linalg.matrix_norm(w_hh.detach(), ord=2).item()
        hidden = torch.stack([h.detach()[-1, 0] for h in states] + [last.detach()[0]])
        result.tanh_slope = (1 - hidden.square()).mean().item()
    return result
