"""The batch editor: edit every image of a folder (or glob) on the server, N requests in flight at a time.

    python -m diffusegae.client.batch --server 127.0.0.1:8001 --source in/ --reference ref.png \\
        --swap background --out out/

or from Python, `edit_directory(Client(url), "in/", "ref.png", ["background"], "out/")`. Each source
`<stem>.<ext>` becomes `out/<stem>.png`, written atomically; outputs already there are skipped, so a run
that was stopped (even killed) resumes where it was. An input that cannot be used (unreadable, not an
image, not the server's image size unless --resize) or that the server fails is reported and the rest go
on. Images are read by the worker that sends them, so at most `concurrency` of them are in memory at once.
Exit codes: 0 all done, 1 some images failed, 2 nothing ran (bad arguments, or the server refused the
edit itself or could not be reached), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from diffusegae.client.errors import ServerError
from diffusegae.client.files import (
    BatchError,
    InputError,
    Job,
    clean_temp_files,
    list_images,
    plan,
    read_image,
    server_image_size,
    write_atomic,
    write_png,
)
from diffusegae.client.sync import Client
from diffusegae.dpm_solver import SAMPLERS
from diffusegae.server.specs import EDIT

__all__ = ["BatchError", "BatchSummary", "add_edit_arguments", "edit_directory", "run_edit"]

EDIT_HELP = "edit a folder of images on a running server (swap attributes from reference images)"
INVALID = "INVALID_ARGUMENT"  # with images checked here first, the edit's own values are wrong: stop


class EditClient(Protocol):
    """What the batch needs of a client: Client, or anything wrapping one."""

    url: str

    def edit(
        self, source: Any, reference: Any, swap: Sequence[str], steps: int = 20, sampler: str | None = None
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class Failure:
    source: Path
    reason: str


@dataclass
class BatchSummary:
    """What a batch did: outputs written, outputs already there, inputs that failed (with the reason)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    stopped: str | None = None  # why the batch stopped early (the server went away), None if it did not
    not_started: int = 0
    seconds: float = 0.0
    # with several servers: per replica, the requests it answered in this batch and its failovers
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.stopped else 0

    def report(self) -> str:
        lines = [
            f"edited {len(self.done)}, skipped {len(self.skipped)} (already there), "
            f"failed {len(self.failed)} in {self.seconds:.1f} s"
        ]
        if self.stopped:
            lines.append(
                f"stopped early: {self.stopped}; {self.not_started} not started (run again to resume)"
            )
        lines += [f"  failed: {f.source}: {f.reason}" for f in self.failed]
        if len(self.replicas) > 1:
            for url, c in self.replicas.items():
                failovers = f", failed over {c['failovers']}× (its requests were retried elsewhere)"
                lines.append(
                    f"  replica {url}: answered {c['answered']}" + (failovers if c["failovers"] else "")
                )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": [{"source": str(f.source), "reason": f.reason} for f in self.failed],
            "stopped": self.stopped,
            "not_started": self.not_started,
            "seconds": round(self.seconds, 3),
            "replicas": self.replicas,
        }


def edit_directory(
    client: EditClient,
    sources: str | Path | Sequence[str | Path],
    reference: str | Path | np.ndarray,
    swap: str | Sequence[str],
    out_dir: str | Path,
    concurrency: int = 4,
    steps: int = 20,
    progress: bool = True,
    *,
    resize: bool = False,
    image_size: int | None = None,
    sampler: str | None = None,
) -> BatchSummary:
    """Edit every source (a folder, a glob, or a list of files) with `reference` (one image for all, or a
    folder paired by sorted order), taking its `swap` attributes; PNGs go to `out_dir`.

    At most `concurrency` requests are in flight. `image_size` (default: asked of the server) is the size
    inputs must have; `resize` resizes others (Lanczos) instead of failing them. BatchError if the batch
    cannot run (nothing was edited then).
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise BatchError(f"--concurrency must be a whole number of at least 1, got {concurrency!r}")
    source_paths = list_images(sources, "--source")
    single = isinstance(reference, np.ndarray) or Path(reference).is_file()
    references = None if single else list_images(reference, "--reference")
    out = Path(out_dir)
    jobs = plan(source_paths, references, out)
    if image_size is None:
        try:
            image_size = server_image_size(client.url, getattr(client, "retry", None))
        except ServerError as err:
            raise BatchError(f"cannot ask the server at {client.url} for its {EDIT} op: {err}") from None
    ref_image = _single_reference(reference, image_size, resize) if single else None
    out.mkdir(parents=True, exist_ok=True)
    clean_temp_files(out)
    names = [swap] if isinstance(swap, str) else list(swap)
    batch = _Batch(client, ref_image, names, steps, image_size, resize, progress, sampler)
    replicas = getattr(client, "replicas", None)
    before = replicas.counts() if replicas is not None else {}
    summary = batch.run(jobs, concurrency)
    if replicas is not None:
        summary.replicas = {
            url: {key: n - before[url][key] for key, n in counts.items()}
            for url, counts in replicas.counts().items()
        }
    return summary


def _single_reference(reference: str | Path | np.ndarray, size: int, resize: bool) -> np.ndarray:
    if isinstance(reference, np.ndarray):
        if reference.dtype != np.uint8 or reference.shape != (size, size, 3):
            raise BatchError(
                f"reference must be uint8 [{size},{size},3], got {reference.dtype} {reference.shape}"
            )
        return reference
    try:
        return read_image(Path(reference), size, resize)
    except InputError as err:
        raise BatchError(f"--reference {reference}: {err}") from None


@dataclass
class _Batch:
    """One run: a pool of `concurrency` workers, fed one job per free slot (images load in the workers)."""

    client: EditClient
    ref_image: np.ndarray | None  # the reference of every source; None: each job names its own
    swap: list[str]
    steps: int
    size: int
    resize: bool
    progress: bool
    sampler: str | None = None  # None: the server's default (DDIM)
    summary: BatchSummary = field(default_factory=BatchSummary)
    refused: ServerError | None = None
    bar: Any = None  # the tqdm bar of the run

    def run(self, jobs: list[Job], concurrency: int) -> BatchSummary:
        start = time.perf_counter()
        # disable=None: a bar only on a terminal; the summary is printed either way
        disable = None if self.progress else True
        self.bar = tqdm(total=len(jobs), desc="edit", unit="img", file=sys.stderr, disable=disable)
        pending: dict[Future, Job] = {}
        with self.bar, ThreadPoolExecutor(concurrency, thread_name_prefix="diffusegae-edit") as pool:
            for job in jobs:
                if job.out.exists():
                    self.summary.skipped.append(job.out)
                    self.bar.update()
                    continue
                while len(pending) >= concurrency:
                    self._collect(pending)
                if self.refused or self.summary.stopped:
                    break
                pending[pool.submit(self._edit, job)] = job
            while pending:
                self._collect(pending)
        s = self.summary
        s.not_started = len(jobs) - len(s.done) - len(s.skipped) - len(s.failed)
        s.seconds = time.perf_counter() - start
        if self.refused is not None:
            raise BatchError(f"the server refused the edit: {self.refused.message}")
        return s

    def _edit(self, job: Job) -> None:
        source = read_image(job.source, self.size, self.resize)
        reference = self.ref_image
        if job.reference is not None:
            try:
                reference = read_image(job.reference, self.size, self.resize)
            except InputError as err:
                raise InputError(f"its reference {job.reference}: {err}") from None
        sampler = {"sampler": self.sampler} if self.sampler is not None else {}
        edited = self.client.edit(source, reference, swap=self.swap, steps=self.steps, **sampler)
        write_png(edited[0], job.out)

    def _collect(self, pending: dict[Future, Job]) -> None:
        """Wait for at least one request to finish, and account for each that did."""
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            job = pending.pop(future)
            try:
                future.result()
                self.summary.done.append(job.out)
            except InputError as err:
                self._fail(job, str(err))
            except ServerError as err:
                if err.status == INVALID:
                    self.refused = err
                else:
                    self._fail(job, f"server error {err}")
                    if err.retryable:  # still unavailable after the client's retries: stop here
                        self.summary.stopped = (
                            f"the server at {self.client.url} is unavailable ({err.message})"
                        )
            except Exception as err:  # e.g. the output could not be written: this image fails, not the batch
                self._fail(job, f"{type(err).__name__}: {err}")
            self.bar.update()

    def _fail(self, job: Job, reason: str) -> None:
        self.summary.failed.append(Failure(job.source, reason))
        self.bar.set_postfix(failed=len(self.summary.failed), refresh=False)
        if self.progress:
            self.bar.write(f"failed: {job.source}: {reason}", file=sys.stderr)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_edit_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `edit` command's arguments (run them with run_edit)."""
    parser.add_argument("--server", default="127.0.0.1:8001", help="gRPC host:port of the server")
    parser.add_argument("--source", required=True, help="a folder of images, an image, or a glob")
    parser.add_argument("--reference", required=True, help="one image, or a folder paired by sorted order")
    parser.add_argument("--swap", required=True, help="attributes from the reference, e.g. background,pose")
    parser.add_argument("--out", required=True, help="output folder (outputs already there are skipped)")
    parser.add_argument("--concurrency", type=_positive, default=4, help="requests in flight (default 4)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="ddim (the server's default) or dpmpp2m (DPM-Solver++)",
    )
    parser.add_argument(
        "--resize",
        action="store_true",
        help="resize images to the server's size (Lanczos); without it other sizes are reported and skipped",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default 300)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_edit(args: argparse.Namespace) -> int:
    """Run the batch the arguments describe, print its summary, write <out>/summary.json; the exit code."""
    swap = [name.strip() for name in args.swap.split(",") if name.strip()]
    try:
        with Client(args.server, timeout=args.timeout) as client:
            options = {k: getattr(args, k) for k in ("concurrency", "steps", "sampler", "resize")}
            summary = edit_directory(
                client, args.source, args.reference, swap, args.out, progress=not args.no_progress, **options
            )
    except BatchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the outputs written so far are complete; run again to resume", file=sys.stderr)
        return 130
    print(summary.report())
    write_atomic(Path(args.out) / "summary.json", json.dumps(summary.to_json(), indent=1).encode())
    return summary.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffusegae.client.batch", description=EDIT_HELP)
    return run_edit(add_edit_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
