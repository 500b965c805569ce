"""``ecgfounder export``: the model as an ONNX or TorchScript file, with its metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._checks import check_writable, usage
from ._common import add_model_args, model_from_args, say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export the model to ONNX or TorchScript",
        description="Write the model as ONNX (opset 17) or TorchScript: input x (batch, leads, 5000) float32, "
        "outputs logits and features. The file carries the labels, the preprocessing contract and the task "
        "as metadata (ONNX metadata_props 'ecgfounder.*'; TorchScript extra/ecgfounder.json).",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file (.onnx, .pt/.ts), replaced if it exists")
    p.add_argument("--format", dest="export_format", choices=("onnx", "torchscript"),
                   help="file format (default: from the suffix: .onnx → onnx, else torchscript)")
    p.add_argument("--int8", action="store_true",
                   help="ONNX only: also quantise to int8, calibrated on the preprocessed records given by --calibrate")
    p.add_argument("--calibrate", nargs="+", metavar="PATH", help="ECG files/folders to calibrate int8 on (16-64 records)")
    p.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime",
                   help="with --int8: the runtime the graph is laid out for (the same values either way; OpenVINO "
                   "runs its own layout ~1.2x faster, ONNX Runtime the default one ~1.3x faster)")
    add_model_args(p)
    p.set_defaults(func=run)


def _refuse_overwriting_inputs(out: Path, inputs: list, flag: str) -> None:
    """Refuse an output that is one of the command's input files: exporting would replace it."""
    from .._fileio import same_file

    for f in inputs:
        if same_file(out, f):
            raise usage(f"-o/--output {out} is the file given to {flag} ({f}); exporting would overwrite it. "
                        "Give another output file name.")


def run(args: argparse.Namespace) -> int:
    from ..runtime import export_onnx, export_torchscript

    out = Path(args.output)
    fmt = args.export_format or ("onnx" if out.suffix.lower() == ".onnx" else "torchscript")
    if args.int8 and fmt != "onnx":
        raise ValueError("--int8 applies to ONNX exports; use --format onnx (or a .onnx output).")
    if args.runtime != "onnxruntime" and not args.int8:
        raise ValueError(f"--runtime {args.runtime} lays out the int8 graph; add --int8 (the fp32 graph is the same "
                         "for every runtime).")
    if args.int8 and not args.calibrate:
        raise ValueError("--int8 needs calibration records: --calibrate PATH... (16-64 ECG records like those you will score).")
    if (out.suffix.lower() == ".onnx" and fmt != "onnx") or (out.suffix.lower() in (".pt", ".ts") and fmt == "onnx"):
        raise ValueError(f"--format {fmt} does not match -o {out} (.onnx is ONNX, .pt/.ts TorchScript); change the "
                         "suffix or the --format.")
    if args.calibrate and not args.int8:
        raise ValueError("--calibrate gives the records int8 is calibrated on; add --int8 (or drop --calibrate).")
    check_writable(out, "-o/--output")
    _refuse_overwriting_inputs(out, [args.checkpoint] if args.checkpoint else [], "--checkpoint")
    if fmt == "onnx":
        from .._deps import require

        require("onnx", "onnx", "export --format onnx")
        if args.int8:
            require("onnxruntime", "onnx", "export --int8")
    if args.int8:
        from ..io import find_records

        files = find_records(args.calibrate)
        if not files:
            raise ValueError(f"--calibrate {' '.join(args.calibrate)}: no ECG records found; give files or folders holding them.")
        _refuse_overwriting_inputs(out, files, "--calibrate")
    model = model_from_args(args)
    if fmt == "torchscript":
        export_torchscript(model, out)
        say(f"TorchScript written to {out} (torch.jit.load; metadata in extra/ecgfounder.json)")
        return 0
    if not args.int8:
        export_onnx(model, out)
        say(f"ONNX written to {out} (opset 17; metadata: ecgfounder.labels, .contract, .task_meta, .config)")
        return 0
    import shutil
    import tempfile

    from .._fileio import atomic_path
    from ..prediction.records import calibration_windows
    from ..runtime.graphs import quantize_int8

    say(f"calibrating on up to 64 records of {', '.join(args.calibrate)} and quantising (about 30 s)")
    wins = calibration_windows(files, model.contract, 64)
    if wins is None:
        raise ValueError(f"none of {args.calibrate} could be read and prepared for calibration.")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx")
        if args.runtime == "openvino":
            from ..runtime.openvino import write_openvino_int8

            qdq = quantize_int8(fp32, Path(tmp) / "int8.onnx", wins)
            if not write_openvino_int8(qdq, out):  # nothing to move: the graph as it is
                with atomic_path(out) as part:  # (a full disk leaves no cut file under -o)
                    shutil.copyfile(qdq, part)
        else:
            quantize_int8(fp32, out, wins)
    say(f"int8 ONNX for {args.runtime} written to {out} (calibrated on {len(wins)} records)")
    return 0
