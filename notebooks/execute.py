"""Executes notebooks top to bottom (full settings unless GENJAX_NOTEBOOK_FAST=1 is set) and
saves their figures as PNGs, so a full run can be looked at without a Jupyter server.

    python notebooks/execute.py quickstart_ddpm swiss_roll --out runs/notebooks

Writes ``<out>/<name>/NN.png`` for every image the notebook displays and prints its text
output; exits non-zero if a cell fails (a failed assertion included).
"""

import argparse
import base64
import os
import pathlib

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("names", nargs="+", help="notebook names in notebooks/, without .ipynb")
  ap.add_argument("--out", default=str(ROOT / "runs" / "notebooks"))
  ap.add_argument("--cell_timeout_s", type=int, default=1800)
  args = ap.parse_args()
  for name in args.names:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=args.cell_timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    out = os.path.join(args.out, name)
    os.makedirs(out, exist_ok=True)
    n = 0
    for cell in nb.cells:
      for o in cell.get("outputs", []):
        if "image/png" in o.get("data", {}):
          with open(os.path.join(out, f"{n:02d}.png"), "wb") as f:
            f.write(base64.b64decode(o["data"]["image/png"]))
          n += 1
        elif o.get("output_type") == "stream":
          print(o["text"][-1000:], end="")
    print(f"{name}: {n} figures in {out}")


if __name__ == "__main__":
  main()
