"""Argument groups and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from ._checks import rate, seconds, voltage_unit

__all__ = ["add_model_args", "model_from_args", "add_read_args", "read_options", "say", "progress", "flags",
           "cli_forms", "CLIStream"]

# library argument → command-line flag, for messages written in the library's terms
_FLAGS = {
    "device": "--device", "precision": "--precision", "backend": "--backend", "resume": "--resume",
    "shard": "--shard", "output": "--output", "embeddings": "--embeddings", "batch_size": "--batch-size",
    "workers": "--workers", "mode": "--mode", "lead": "--lead", "fill_missing": "--fill-missing",
    "aggregate": "--aggregate", "strict": "--no-strict", "inputs": "PATH", "quality": "--quality-gate",
    "quality_detail": "--quality-detail", "calibrated": "--calibrated", "max_duration": "--max-duration",
    "units": "--units", "calibration_records": "--calibration-records", "start": "--start",
    "restart": "--restart", "format": "--format", "calibrate": "--calibrate", "save_calibrated": "--save-calibrated",
    "out_dir": "--output", "n_steps": "--steps", "index": "--index", "fs": "--fs", "leads": "--leads",
    "dataset": "--dataset", "key": "--key",
}


# (a library call offered first, "load_model(FILE), or model=FILE (CLI: --checkpoint FILE)", goes with it)
_ASIDE = re.compile(r"(?:\b[\w.]+\([^()]*\),? or )?\b\w+=('[^']*'|\[[^\]]*\]|[^\s()\[\]']+) \(CLI: ([^()]*)\)")


def cli_forms(message: str) -> str:
    """``message`` with each library argument that carries its command-line form beside it
    (``fill_missing=True (CLI: --fill-missing)``, or ``load_model(FILE), or model=FILE (CLI:
    --checkpoint FILE)``) written as that form alone (``--fill-missing``, ``--checkpoint FILE``)."""
    return _ASIDE.sub(lambda m: m.group(2), message)


class CLIStream:
    """A text stream (``sys.stderr`` by default, looked up when written) whose lines are written
    with :func:`flags`: for the per-record lines the library prints while a command runs."""

    def __init__(self, stream: Any = None):
        self._stream = stream

    @property
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> int:
        return self.stream.write(flags(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())


def flags(message: str, argument: str | None = None, names: dict[str, str] | None = None) -> str:
    """A library message with its argument names (``device='cpu'``, ``resume=True``) written as
    the command line's flags (``--device cpu``, ``--resume``).  An argument the message follows with
    its command-line form (``lead='II' (CLI: --lead II)``, for lines the command line prints as they
    are) becomes that form.  ``argument``: the one a :class:`~ecgfounder.errors.SetupError` names,
    also translated where the message names it bare (``device 'gpu' is ...``, ``give output``);
    ``names``: a command's own flags for library arguments (``embed``: output is ``--index``)."""
    table = {**_FLAGS, **(names or {})}
    message = cli_forms(message)
    if argument in table:
        message = re.sub(rf"(^|give |and |leave ){re.escape(argument)}(?![\w=-])( '([^']*)')?",
                         lambda m: f"{m.group(1)}{table[argument]}" + (f" {m.group(3)}" if m.group(2) else ""), message)

    def sub(m: re.Match) -> str:
        with_, name, value = m.group(1) or "", m.group(2), m.group(3)
        flag = table[name]
        if value == "True":
            return f"{with_}{flag}"
        if value == "False":
            return f"without {flag}"
        return f"{with_}{flag} {value.strip(chr(39))}"

    known = "|".join(k for k in table if k != "inputs")
    # (not a key of a configuration section, "output.resume=auto", "train.batch_size=0": finetune's
    # and pretrain's settings are given so on their command line)
    pattern = r"(with )?(?<![\w.])(" + known + r")=('[^']*'|True|False|[\w.:-]+)"
    message = re.sub(pattern, sub, message)
    # a bound stated on the argument itself, opening a sentence ("batch_size must be >= 1; got 0")
    return re.sub(r"(^|: |; )(" + known + r")(?= must\b)", lambda m: m.group(1) + table[m.group(2)], message)


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--weights", default="12-lead", metavar="NAME",
                     help="weights from the Hugging Face Hub: 12-lead (default) or 1-lead (published), or "
                     "hf://owner/name[@revision] (a model shared on the Hub)")
    src.add_argument("--checkpoint", metavar="FILE",
                     help="a local checkpoint: the published .pth, a .safetensors written by ecgfounder, or a "
                     "folder written by save_pretrained (finetune, pretrain, a downloaded hf:// model)")
    g.add_argument("--no-strict", action="store_true", help="accept state dicts whose keys differ from the architecture")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")


def model_source(args: argparse.Namespace) -> str:
    return args.checkpoint or args.weights


def model_from_args(args: argparse.Namespace) -> Any:
    """The model the flags name, after the checks that need no model (device, weights name)."""
    from ..models.loading import load_model
    from ..prediction.setup import check_device, check_weights

    check_device(args.device)
    check_weights(model_source(args))
    return load_model(model_source(args), strict=not args.no_strict)


def say(msg: str) -> None:
    print(msg, file=sys.stderr)


def progress(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rec", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, leave=False)


def add_read_args(p: argparse.ArgumentParser) -> None:
    """Options telling the readers what a file does not say (shared by every command that reads records)."""
    # The format names are not listed here: importing the readers' table would load scipy before a
    # mistake can be answered; an unknown name is refused by the reader with the list of known ones.
    g = p.add_argument_group("reading")
    g.add_argument("--format", dest="read_format", metavar="NAME",
                   help="force the file format (a name of ecgfounder.io.FORMATS, e.g. wfdb, edf, muse, dicom, npy, "
                   "csv, hdf5; 'ecgfounder info FILE' shows what is detected)")
    g.add_argument("--fs", type=rate, metavar="HZ", help="sampling rate for files that do not store it (npy, csv, hdf5, matlab); a file that stores its own keeps it (a differing value is said unused)")
    g.add_argument("--leads", metavar="I,II,...", help="lead names for files that do not store them")
    g.add_argument("--units", type=voltage_unit, metavar="UNIT", help="amplitude unit of array/CSV files: mV (default), "
                   "uV, V or nV")
    g.add_argument("--dataset", metavar="PATH", help="HDF5 dataset holding the signals (e.g. tracings)")
    g.add_argument("--key", metavar="NAME", help="NumPy .npz entry or MATLAB variable holding the signals")
    g.add_argument("--max-duration", type=seconds, metavar="S",
                   help="read at most the first S seconds of each record (long Holter files; default: all, "
                   "within the readers' size limits)")


def read_options(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if getattr(args, "read_format", None):
        kw["format"] = args.read_format
    if getattr(args, "fs", None) is not None:
        kw["fs"] = args.fs
    if getattr(args, "leads", None):
        kw["leads"] = [x.strip() for x in args.leads.split(",") if x.strip()]
    if getattr(args, "units", None):
        kw["units"] = args.units
    if getattr(args, "dataset", None):
        kw["dataset"] = args.dataset
    if getattr(args, "key", None):
        kw["key"] = args.key
    if getattr(args, "max_duration", None) is not None:
        kw["max_duration"] = args.max_duration
    return kw
