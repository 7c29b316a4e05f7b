"""A restricted unpickler for the Planetoid `ind.*` files.

The Planetoid files are Python 2 pickles of numpy arrays, scipy CSR matrices and a
defaultdict of lists. A plain `pickle.load` would run whatever callable a tampered
file names (`os.system`, `eval`, ...), so this unpickler resolves only an explicit
allowlist of (module, name) pairs and refuses everything else before it is imported.
"""

from __future__ import annotations

import _codecs
import builtins
import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from harness.errors import UserError


def _numpy_reconstruct() -> Any:
    # numpy 2 moved numpy.core to numpy._core; old pickles still name the old path.
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    return _reconstruct, scalar


_RECONSTRUCT, _SCALAR = _numpy_reconstruct()

# (module, name) -> object. Old module paths are listed beside the new ones on purpose:
# the files were written by Python 2 with numpy 1.x and scipy < 1.8.
ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
    ("scipy.sparse._csr", "csr_matrix"): scipy.sparse.csr_matrix,
    ("scipy.sparse", "csr_matrix"): scipy.sparse.csr_matrix,
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "list"): builtins.list,
    ("builtins", "dict"): builtins.dict,
    ("builtins", "set"): builtins.set,
    ("builtins", "frozenset"): builtins.frozenset,
    ("builtins", "tuple"): builtins.tuple,
    ("builtins", "int"): builtins.int,
    ("builtins", "float"): builtins.float,
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1"): text to bytes, no side effect.
    ("_codecs", "encode"): _codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only numpy arrays, scipy CSR matrices and builtin containers."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles name builtins "__builtin__"; the base class maps this only in
        # its own find_class, which we deliberately do not call.
        module = "builtins" if module == "__builtin__" else module
        found = ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays, scipy CSR matrices and "
                "builtin containers are allowed in these files"
            )
        return found


def safe_loads(data: bytes) -> Any:
    """Unpickle bytes through the allowlist (latin1 decodes Python 2 str as numpy expects)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def safe_load(path: Path) -> Any:
    """Unpickle a file through the allowlist; a refused, truncated or malformed file is a UserError."""
    try:
        data = Path(path).read_bytes()
        return safe_loads(data)
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: not a valid Planetoid pickle ({err}).") from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: truncated or malformed Planetoid pickle ({type(err).__name__}: {err}).") from err
