"""The command line: ``nnbackend train`` and ``nnbackend info``.

Every refusal (bad argument, unknown name, unusable backend) ends with one
line ``nnbackend: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import __version__
from .backend import BACKEND_NAMES, BackendUnavailableError, available_backends, get_backend
from .data import MODES
from .model import MLP
from .optim import OPTIMIZERS

# XOR: the seed tutorial's data, which needs the hidden layer.
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.float64)


def _sizes(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 64,32; got {text!r}")
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden layer sizes must be >= 1; got {text!r}")
    return sizes


def _parser():
    parser = argparse.ArgumentParser(prog="nnbackend", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nnbackend {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def backend_flags(p):
        p.add_argument("--backend", default=None,
                       help=f"one of {', '.join(BACKEND_NAMES)} (default: $NNBACKEND_BACKEND or numpy)")
        p.add_argument("--device", default=None, help="the backend's device, e.g. cuda:0 or device1")

    train = commands.add_parser("train", help="train an MLP on XOR (the seed's data)")
    backend_flags(train)
    train.add_argument("--mode", choices=MODES, default="batch")
    train.add_argument("--batch-size", type=int, default=2)
    train.add_argument("--epochs", type=int, default=2000)
    train.add_argument("--lr", type=float, default=0.5)
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd")
    train.add_argument("--hidden", type=_sizes, default=[4], help="hidden layer sizes, e.g. 64,32")
    train.add_argument("--activation", default="tanh", help="hidden activation")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--json", action="store_true", help="print a JSON summary instead of text")

    info = commands.add_parser("info", help="the backends on this machine")
    info.add_argument("--json", action="store_true")
    backend_flags(info)
    return parser


def _train(args):
    model = MLP([2, *args.hidden, 1], hidden_activation=args.activation,
                output_activation="sigmoid", loss="bce", backend=args.backend,
                device=args.device, dtype=args.dtype, seed=args.seed)
    start = time.perf_counter()
    hist = model.fit(XOR_X, XOR_Y, mode=args.mode, batch_size=args.batch_size,
                     epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, seed=args.seed)
    seconds = time.perf_counter() - start
    out = model.backend.to_host(model.predict(XOR_X)).ravel()
    accuracy = float(np.mean((out > 0.5) == (XOR_Y > 0.5)))
    summary = {
        "dataset": "xor", "backend": model.backend.name, "device": str(model.backend.device),
        "layer_sizes": model.layer_sizes, "mode": args.mode, "batch_size": hist.batch_size,
        "epochs": args.epochs, "final_loss": hist.loss[-1], "accuracy": accuracy,
        "seconds": seconds, "samples_per_second": args.epochs * hist.n_samples / seconds,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"trained {model.layer_sizes} on XOR with {args.mode} descent, "
              f"backend {summary['backend']} on {summary['device']}")
        print(f"loss {hist.loss[0]:.4f} -> {hist.loss[-1]:.4f} after {args.epochs} epochs "
              f"({seconds:.2f} s, {summary['samples_per_second']:.0f} samples/s)")
        print("outputs", np.array2string(out, precision=3), f"accuracy {accuracy:.0%}")
    return 0


def _info(args):
    rows = []
    names = [args.backend] if args.backend else list(BACKEND_NAMES)
    usable = available_backends()
    for name in names:
        try:
            b = get_backend(name, args.device)
            rows.append({"backend": name, "available": True, "device": str(b.device),
                         "float_dtypes": list(b.float_dtypes())})
        except BackendUnavailableError as exc:
            if args.backend:
                raise
            rows.append({"backend": name, "available": False, "reason": str(exc)})
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        if row["available"]:
            print(f"{row['backend']:8s} yes  device {row['device']}  dtypes {', '.join(row['float_dtypes'])}")
        else:
            print(f"{row['backend']:8s} no   {row['reason']}")
    print(f"usable here: {', '.join(usable)}")
    return 0


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return {"train": _train, "info": _info}[args.command](args)
    except (ValueError, TypeError, BackendUnavailableError) as exc:
        parser.exit(2, f"nnbackend: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
