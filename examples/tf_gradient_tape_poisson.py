"""A 1-D Poisson PINN in a plain `tf.GradientTape` loop, recorded and steered through pinnprov's run API.

    -u''(x) = pi^2 sin(pi x) on (0, 1),  u(0) = u(1) = 0,  a few noisy observations of u = sin(pi x)

    python examples/tf_gradient_tape_poisson.py --store sqlite:///prov.db --epochs 3000
    pinnprov steer latest --store sqlite:///prov.db --scale-lr 0.5     # from another terminal, while it trains
    pinnprov query epochs --run latest --store sqlite:///prov.db

The three lines that matter are `start_run`, `log_epoch` and the `commands()` loop. Steering: stop ends the loop
after the epoch, set_lr / scale_lr assign the optimizer's learning rate (a tf.Variable), set_weight changes a loss
term's weight (residual, boundary or data); each is recorded as an adaptation with who asked and why.
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import pinnprov  # noqa: E402


def main(store: str | None = None, epochs: int = 3000, name: str = "poisson-tf", lr: float = 5e-3) -> pinnprov.Run:
    tf.random.set_seed(0)
    net = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(20, activation="tanh"),
                               tf.keras.layers.Dense(20, activation="tanh"), tf.keras.layers.Dense(1)])
    optimizer = tf.keras.optimizers.Adam(lr)
    x_r = tf.reshape(tf.linspace(0.0, 1.0, 64), (-1, 1))
    x_b = tf.constant([[0.0], [1.0]])
    x_d = tf.constant([[0.2], [0.5], [0.7]])
    u_d = tf.sin(math.pi * x_d) + 0.01
    weights = {"residual": tf.Variable(1.0), "boundary": tf.Variable(10.0), "data": tf.Variable(1.0)}

    @tf.function
    def step() -> tuple[tf.Tensor, ...]:
        with tf.GradientTape() as tape:
            with tf.GradientTape() as outer:
                outer.watch(x_r)
                with tf.GradientTape() as inner:
                    inner.watch(x_r)
                    u = net(x_r)
                du = inner.gradient(u, x_r)
            d2u = outer.gradient(du, x_r)
            residual = tf.reduce_mean((-d2u - math.pi**2 * tf.sin(math.pi * x_r)) ** 2)
            boundary = tf.reduce_mean(net(x_b) ** 2)
            data = tf.reduce_mean((net(x_d) - u_d) ** 2)
            loss = weights["residual"] * residual + weights["boundary"] * boundary + weights["data"] * data
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        return loss, boundary, residual, data

    hyperparameters = {"optimizer": "adam", "lr.initial": lr, "layers": "1-20-20-1", "activation": "tanh",
                       "collocation_points": 64, **{f"weight.{k}": float(v.numpy()) for k, v in weights.items()}}
    with pinnprov.start_run(name=name, experiment="examples", hyperparameters=hyperparameters,
                            dataset={"name": "sin(pi x) observations", "source": "synthetic"}, store=store) as run:
        for epoch in range(epochs):
            loss, boundary, residual, data = step()
            run.log_epoch(epoch, loss=loss, loss_bc=boundary, loss_residual=residual, loss_data=data,
                          learning_rate=optimizer.learning_rate)
            for command in run.commands():
                if command.kind == "stop":
                    command.applied()
                elif command.kind in ("set_lr", "scale_lr"):
                    old = float(optimizer.learning_rate.numpy())
                    optimizer.learning_rate.assign(command.value if command.kind == "set_lr" else old * command.value)
                    command.applied(old_value=old, new_value=float(optimizer.learning_rate.numpy()))
                elif command.kind == "set_weight" and command.parameter in weights:
                    old = float(weights[command.parameter].numpy())
                    weights[command.parameter].assign(command.value)
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
    parser.add_argument("--name", default="poisson-tf")
    args = parser.parse_args()
    done = main(args.store, args.epochs, args.name)
    print(f"run {done.name} ({done.run_id}) {done.status} after {done.epochs_logged} epochs")
