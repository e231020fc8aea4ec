"""A 1-D Poisson PINN in a JAX/optax loop, recorded and steered through pinnprov's run API.

    -u''(x) = pi^2 sin(pi x) on (0, 1),  u(0) = u(1) = 0,  a few noisy observations of u = sin(pi x)

    python examples/jax_optax_poisson.py --store sqlite:///prov.db --epochs 3000
    pinnprov steer latest --store sqlite:///prov.db --set-weight data=5     # from another terminal

Steering: stop ends the loop after the epoch; set_lr / scale_lr change the learning rate, which optax reads from
the optimizer state (`optax.inject_hyperparams`), so the jitted step is not recompiled; set_weight changes a loss
term's weight (an argument of the step). Each applied command is recorded as an adaptation.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import pinnprov


def _init(key: jax.Array, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (fan_in, fan_out)) * jnp.sqrt(2.0 / (fan_in + fan_out)),
                       jnp.zeros(fan_out)))
    return params


def _u(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    h = jnp.atleast_1d(x)
    for w, b in params[:-1]:
        h = jnp.tanh(h @ w + b)
    w, b = params[-1]
    return (h @ w + b)[0]


def main(store: str | None = None, epochs: int = 3000, name: str = "poisson-jax", lr: float = 5e-3) -> pinnprov.Run:
    sizes = [1, 20, 20, 1]
    params = _init(jax.random.PRNGKey(0), sizes)
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    state = optimizer.init(params)
    x_r = jnp.linspace(0.0, 1.0, 64)
    x_b = jnp.array([0.0, 1.0])
    x_d = jnp.array([0.2, 0.5, 0.7])
    u_d = jnp.sin(jnp.pi * x_d) + 0.01
    weights = {"residual": 1.0, "boundary": 10.0, "data": 1.0}

    def terms(p: list[tuple[jax.Array, jax.Array]]) -> tuple[jax.Array, jax.Array, jax.Array]:
        d2u = jax.vmap(jax.grad(jax.grad(lambda x: _u(p, x))))(x_r)
        residual = jnp.mean((-d2u - jnp.pi**2 * jnp.sin(jnp.pi * x_r)) ** 2)
        boundary = jnp.mean(jax.vmap(lambda x: _u(p, x))(x_b) ** 2)
        data = jnp.mean((jax.vmap(lambda x: _u(p, x))(x_d) - u_d) ** 2)
        return residual, boundary, data

    @jax.jit
    def step(p: list, s: optax.OptState, w: dict[str, float]) -> tuple:
        def loss_fn(q: list) -> tuple[jax.Array, tuple[jax.Array, ...]]:
            residual, boundary, data = terms(q)
            return w["residual"] * residual + w["boundary"] * boundary + w["data"] * data, (residual, boundary, data)

        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss, parts

    hyperparameters = {"optimizer": "adam", "lr.initial": lr, "layers": "-".join(map(str, sizes)),
                       "activation": "tanh", "framework": f"jax {jax.__version__}",
                       **{f"weight.{k}": v for k, v in weights.items()}}
    with pinnprov.start_run(name=name, experiment="examples", hyperparameters=hyperparameters,
                            dataset={"name": "sin(pi x) observations", "source": "synthetic"}, store=store) as run:
        for epoch in range(epochs):
            params, state, loss, (residual, boundary, data) = step(params, state, weights)
            run.log_epoch(epoch, loss=loss, loss_bc=boundary, loss_residual=residual, loss_data=data,
                          learning_rate=state.hyperparams["learning_rate"])
            for command in run.commands():
                if command.kind == "stop":
                    command.applied()
                elif command.kind in ("set_lr", "scale_lr"):
                    old = float(state.hyperparams["learning_rate"])
                    new = command.value if command.kind == "set_lr" else old * command.value
                    state.hyperparams["learning_rate"] = jnp.asarray(new, dtype=jnp.float32)
                    command.applied(old_value=old, new_value=new)
                elif command.kind == "set_weight" and command.parameter in weights:
                    old = weights[command.parameter]
                    weights = {**weights, command.parameter: command.value}
                    command.applied(old_value=old, new_value=command.value)
                else:
                    command.refused(f"{command.kind} {command.parameter} is not supported by this loop")
            if run.should_stop:
                break
    return run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="provenance store URL (default: $PINNPROV_STORE or sqlite:///pinnprov.db)")
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--name", default="poisson-jax")
    args = parser.parse_args()
    done = main(args.store, args.epochs, args.name)
    print(f"run {done.name} ({done.run_id}) {done.status} after {done.epochs_logged} epochs")
