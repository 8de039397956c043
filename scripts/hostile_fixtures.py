#!/usr/bin/env python3
"""Write the hostile weight files of tests/reliability.rs (tests/fixtures/reliability/).

Usage:  python scripts/hostile_fixtures.py [OUT_DIR]   (default: tests/fixtures/reliability)
Needs:  torch.

  pickle_runs_code.pth   torch.save of a dict whose "fc.weight" entry unpickles by calling
                         os.system("touch <marker>") (its __reduce__); loading it with
                         torch.load(weights_only=False) would create the marker file.
                         The marker is /tmp/torchlet-pickle-ran-code.
  pickle_eval.pth        the same with builtins.eval of an expression that writes the marker.
"""
import os
import sys
from pathlib import Path

import torch

MARKER = "/tmp/torchlet-pickle-ran-code"


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class Evals:
    def __reduce__(self):
        return (eval, (f"open({MARKER!r}, 'w').write('ran')",))


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/reliability")
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"fc.weight": RunsCode(), "fc.bias": torch.zeros(10)}, out / "pickle_runs_code.pth")
    torch.save({"fc.weight": Evals(), "fc.bias": torch.zeros(10)}, out / "pickle_eval.pth")
    # Check that the files really are hostile: PyTorch's unsafe load runs them.
    for name in ["pickle_runs_code.pth", "pickle_eval.pth"]:
        if os.path.exists(MARKER):
            os.remove(MARKER)
        torch.load(out / name, weights_only=False)
        assert os.path.exists(MARKER), f"{name} did not run its code under weights_only=False"
        os.remove(MARKER)
        try:
            torch.load(out / name, weights_only=True)
            raise SystemExit(f"{name}: weights_only=True accepted it")
        except Exception as e:  # noqa: BLE001 — PyTorch's UnpicklingError
            print(f"{name}: runs code when unsafe; torch.load(weights_only=True): {type(e).__name__}")


if __name__ == "__main__":
    main()
