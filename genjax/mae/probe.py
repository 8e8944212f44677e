"""Linear probing of frozen features (He et al. 2022, Sec. 4 and Appendix A.2): a linear
classifier on top of a frozen encoder, trained on the train split and scored on the test split.

The paper puts a BatchNorm without affine parameters before the linear layer (a per-feature
standardisation with the train statistics) and trains it with LARS; here the same standardised
features feed a multinomial logistic regression solved to convergence (L-BFGS, L2 penalty),
which is the same linear model without the optimiser's schedule.
"""

from __future__ import annotations

import numpy as np


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, l2: float = 1.0, max_iter: int = 2000) -> float:
  """Test accuracy of a linear classifier on frozen features.

  Args:
    train_x: [N, D] train features.
    train_y: [N] int labels.
    test_x: [M, D] test features.
    test_y: [M] int labels.
    l2: inverse regularisation strength C of the logistic regression.
    max_iter: L-BFGS iterations.

  Returns:
    accuracy in [0, 1].
  """
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  train_x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
  test_x = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
  mean = train_x.mean(0)
  std = train_x.std(0) + 1e-6
  clf = LogisticRegression(C=l2, max_iter=max_iter)
  clf.fit((train_x - mean) / std, np.asarray(train_y))
  return float(np.mean(clf.predict((test_x - mean) / std) == np.asarray(test_y)))


def features_of(fn, source, batch_size: int = 256, label_keys=("label",)):
  """Applies ``fn(x [B, ...]) -> [B, D]`` to every example of ``source``; returns
  ``(features [N, D], {key: labels [N]})`` for the label keys the source has."""
  feats, labels = [], {k: [] for k in label_keys}
  n = len(source)
  for start in range(0, n, batch_size):
    b = source.get(np.arange(start, min(start + batch_size, n)))
    feats.append(np.asarray(fn(np.asarray(b["x"]))))
    for k in label_keys:
      if k in b:
        labels[k].append(np.asarray(b[k]))
  return np.concatenate(feats), {k: np.concatenate(v) for k, v in labels.items() if v}


def probe_table(feature_fns: dict, dataset, label_keys=("label",), l2: float = 1.0) -> dict:
  """``{name: {label_key: test accuracy}}`` of a linear probe on each feature function."""
  out = {}
  for name, fn in feature_fns.items():
    tr, ytr = features_of(fn, dataset.train, label_keys=label_keys)
    te, yte = features_of(fn, dataset.test, label_keys=label_keys)
    out[name] = {k: linear_probe_accuracy(tr, ytr[k], te, yte[k], l2) for k in ytr}
    out[name]["feature_dim"] = int(tr.shape[1])
  return out
