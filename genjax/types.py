"""Small types shared by the data pipeline, the networks, the families and the trainer.

They live below every package so that none of those needs to import another to describe the
data it works on.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What a method needs to know about its data.

  Attributes:
    shape: shape of one example, e.g. (8, 8, 1) for images (NHWC, values in [-1, 1]) or (2,)
      for 2-D point data.
    num_classes: number of class labels (0 if unlabeled).
    kind: "image" or "points".
  """

  shape: tuple[int, ...]
  num_classes: int = 0
  kind: str = "image"
