"""Images and series for DIM and CPC: sklearn's 8x8 digits, digit sequences, UCR Trace/GunPoint/Coffee.

Digits ship with scikit-learn; the UCR series are read from the data root (ucr/NAME/NAME_TRAIN.tsv
and NAME_TEST.tsv, the archive's own format and split). Loading never downloads: `mi-harness data
fetch ucr_trace` (added by plugins.datasets.graphs) installs them.
"""

from __future__ import annotations

from typing import Any

from harness import DatasetSpec, NoParams, Params, hookimpl

UCR = {
    "ucr_trace": ("Trace", "UCR Trace: 4 classes of nuclear-plant transients, length 275, 100 train / 100 test"),
    "ucr_gunpoint": ("GunPoint", "UCR GunPoint: draw a gun or point, 2 classes, length 150, 50 train / 150 test"),
    "ucr_coffee": ("Coffee", "UCR Coffee: spectra of arabica vs robusta, 2 classes, length 286, 28 / 28"),
}
UCR_CITE = "Dau et al. 2019, The UCR time series archive (arXiv:1810.07758)"
DIGITS_CITE = "Alpaydin & Kaynak 1998, UCI optical recognition of handwritten digits (scikit-learn load_digits)"


class DigitsParams(Params):
    test_fraction: float = 0.25
    split_seed: int = 0


class DigitSequenceParams(Params):
    length: int = 8
    n_train: int = 2000
    n_test: int = 1000
    seed: int = 0


def _digits(params: DigitsParams) -> Any:
    from plugins.datasets.digits import load_digits_dataset

    return load_digits_dataset(params.test_fraction, params.split_seed)


def _digit_sequences(params: DigitSequenceParams) -> Any:
    from plugins.datasets.digits import make_digit_sequences

    return make_digit_sequences(params.length, params.n_train, params.n_test, params.seed)


def _ucr(folder: str):
    def build(_params: Params) -> Any:
        from plugins.datasets.ucr import load_ucr

        return load_ucr(folder)

    return build


@hookimpl
def register_datasets(register):
    """digits and digit_sequences (bundled with scikit-learn), ucr_trace, ucr_gunpoint, ucr_coffee (data root)."""
    register(DatasetSpec(
        name="digits", summary="scikit-learn 8x8 digits: 1797 images, 10 classes, stratified 75/25 split",
        params=DigitsParams, build=_digits, cite=DIGITS_CITE,
    ))
    register(DatasetSpec(
        name="digit_sequences",
        summary="sequences of 8x8 digit images counting up mod 10 (CPC check); label = class of the last image",
        params=DigitSequenceParams, build=_digit_sequences, cite="van den Oord et al. 2018 (arXiv:1807.03748)",
    ))
    for name, (folder, summary) in UCR.items():
        register(DatasetSpec(name=name, summary=summary, params=NoParams, build=_ucr(folder), cite=UCR_CITE))
