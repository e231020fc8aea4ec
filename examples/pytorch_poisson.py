"""A 1-D Poisson PINN in a PyTorch loop, recorded and steered through pinnprov's run API.

    -u''(x) = pi^2 sin(pi x) on (0, 1),  u(0) = u(1) = 0,  a few noisy observations of u = sin(pi x)

    python examples/pytorch_poisson.py --store sqlite:///prov.db --epochs 3000
    pinnprov steer latest --store sqlite:///prov.db --set-lr 1e-3     # from another terminal

Steering: stop ends the loop after the epoch; set_lr / scale_lr set every parameter group's `lr`; set_weight
changes a loss term's weight. Each applied command is recorded as an adaptation.
"""

from __future__ import annotations

import argparse
import math

import torch

import pinnprov


def main(store: str | None = None, epochs: int = 3000, name: str = "poisson-torch", lr: float = 5e-3) -> pinnprov.Run:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 20), torch.nn.Tanh(), torch.nn.Linear(20, 20), torch.nn.Tanh(),
                              torch.nn.Linear(20, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    x_r = torch.linspace(0.0, 1.0, 64).reshape(-1, 1).requires_grad_(True)
    x_b = torch.tensor([[0.0], [1.0]])
    x_d = torch.tensor([[0.2], [0.5], [0.7]])
    u_d = torch.sin(math.pi * x_d) + 0.01
    weights = {"residual": 1.0, "boundary": 10.0, "data": 1.0}

    hyperparameters = {"optimizer": "adam", "lr.initial": lr, "layers": "1-20-20-1", "activation": "tanh",
                       "framework": f"torch {torch.__version__}", **{f"weight.{k}": v for k, v in weights.items()}}
    with pinnprov.start_run(name=name, experiment="examples", hyperparameters=hyperparameters,
                            dataset={"name": "sin(pi x) observations", "source": "synthetic"}, store=store) as run:
        for epoch in range(epochs):
            optimizer.zero_grad()
            u = net(x_r)
            du = torch.autograd.grad(u.sum(), x_r, create_graph=True)[0]
            d2u = torch.autograd.grad(du.sum(), x_r, create_graph=True)[0]
            residual = ((-d2u - math.pi**2 * torch.sin(math.pi * x_r)) ** 2).mean()
            boundary = (net(x_b) ** 2).mean()
            data = ((net(x_d) - u_d) ** 2).mean()
            loss = weights["residual"] * residual + weights["boundary"] * boundary + weights["data"] * data
            loss.backward()
            optimizer.step()
            run.log_epoch(epoch, loss=loss.detach(), loss_bc=boundary.detach(), loss_residual=residual.detach(),
                          loss_data=data.detach(), learning_rate=optimizer.param_groups[0]["lr"])
            for command in run.commands():
                if command.kind == "stop":
                    command.applied()
                elif command.kind in ("set_lr", "scale_lr"):
                    old = optimizer.param_groups[0]["lr"]
                    new = command.value if command.kind == "set_lr" else old * command.value
                    for group in optimizer.param_groups:
                        group["lr"] = new
                    command.applied(old_value=old, new_value=new)
                elif command.kind == "set_weight" and command.parameter in weights:
                    old = weights[command.parameter]
                    weights[command.parameter] = command.value
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
    parser.add_argument("--name", default="poisson-torch")
    args = parser.parse_args()
    done = main(args.store, args.epochs, args.name)
    print(f"run {done.name} ({done.run_id}) {done.status} after {done.epochs_logged} epochs")
