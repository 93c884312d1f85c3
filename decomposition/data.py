"""Small datasets that ship with scikit-learn, as deterministic tensors.

``load("digits")`` gives the 8x8 digits (1797 images, 10 classes) flattened to
64 features scaled from [0, 16] to [0, 1]; ``load("iris")`` / ``load("wine")``
are standardized with the training split's mean and std. The train/test split
is stratified and fixed by ``split_seed``; nothing is downloaded.

scikit-learn is imported lazily (it is a dev dependency, not a runtime one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modpact.errors import SpecError
from modpact.interfaces import Interface, LabelSpace, TensorSpec

__all__ = ["Dataset", "load", "DIGITS", "digits_interface"]

DIGITS = LabelSpace("digits", [str(i) for i in range(10)])


@dataclass
class Dataset:
    """Train/test tensors and the label space the integer targets index into."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    labels: LabelSpace

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def subset(self, classes: list[str], labels: LabelSpace | None = None) -> Dataset:
        """Only the samples of ``classes`` (names), re-indexed into ``labels``
        (default: a label space of those classes in the given order)."""
        labels = labels or LabelSpace(f"{self.labels.name}-subset", list(classes))
        old = torch.tensor([self.labels.index(c) for c in classes])
        new = torch.tensor([labels.index(c) for c in classes])

        def pick(x, y):
            keep = torch.isin(y, old)
            lut = torch.full((len(self.labels),), -1, dtype=torch.long)
            lut[old] = new
            return x[keep], lut[y[keep]]

        xtr, ytr = pick(self.x_train, self.y_train)
        xte, yte = pick(self.x_test, self.y_test)
        return Dataset(f"{self.name}[{','.join(classes)}]", xtr, ytr, xte, yte, labels)

    def relabel(self, labels: LabelSpace) -> Dataset:
        """The same samples with targets indexing ``labels`` (same names, another order)."""
        perm = torch.tensor(self.labels.align(labels))  # perm[k] = old index of labels[k]
        lut = torch.empty_like(perm)
        lut[perm] = torch.arange(len(perm))
        return Dataset(self.name, self.x_train, lut[self.y_train], self.x_test, lut[self.y_test], labels)


def load(name: str = "digits", *, test_size: float = 0.3, split_seed: int = 0) -> Dataset:
    """Load ``digits``, ``iris`` or ``wine`` as float32 tensors (deterministic)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loaders = {"digits": datasets.load_digits, "iris": datasets.load_iris, "wine": datasets.load_wine}
    if name not in loaders:
        raise SpecError(f"load(name={name!r}): unknown dataset; expected one of {', '.join(loaders)}")
    if not 0 < test_size < 1:
        raise SpecError(f"load(test_size={test_size!r}): expected a fraction in (0, 1)")
    bunch = loaders[name]()
    xtr, xte, ytr, yte = train_test_split(
        bunch.data, bunch.target, test_size=test_size, random_state=split_seed, stratify=bunch.target
    )
    xtr, xte = torch.tensor(xtr, dtype=torch.float32), torch.tensor(xte, dtype=torch.float32)
    if name == "digits":
        xtr, xte = xtr / 16.0, xte / 16.0
        labels = DIGITS
    else:
        mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
        labels = LabelSpace(name, [str(n) for n in bunch.target_names])
    return Dataset(name, xtr, torch.tensor(ytr), xte, torch.tensor(yte), labels)


def digits_interface(labels: LabelSpace = DIGITS, name: str = "digit-classifier") -> Interface:
    """The interface of a digits classifier: 64 features in [0, 1] -> logits over ``labels``."""
    return Interface(
        name,
        inputs={"x": TensorSpec("batch 64", dtype="float32", range=(0, 1))},
        outputs={"logits": TensorSpec(f"batch {len(labels)}", dtype="float32", labels=labels)},
    )
