"""eval.json (every number with the settings used) and eval.md (the same as markdown tables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JSON_FILE = "eval.json"
MARKDOWN_FILE = "eval.md"


def _pm(metric: dict[str, float], digits: int) -> str:
    return f"{metric['mean']:.{digits}f} ± {metric['std']:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _reconstruction(rec: dict[str, Any]) -> list[str]:
    rows = [
        [str(r["steps"]), r["x_T"], _pm(r["mse"], 5), _pm(r["psnr"], 2), _pm(r["ssim"], 4)]
        for r in rec["rows"]
    ]
    return [
        f"## Reconstruction (Table 2 analog): {rec['images']} held-out {rec['split']}-split images",
        "",
        "Images in [0, 1]; mean ± std over images. Inferred x_T: encode → DDIM inversion → decode; "
        "random x_T: seeded N(0, I).",
        "",
        *_table(["S", "x_T", "MSE", "PSNR (dB)", "SSIM"], rows),
    ]


def conditioning_table(cond: dict[str, Any]) -> list[str]:
    columns = {"signal": ".3f", "loss_own": ".5f", "loss_other": ".5f", "z_sem_share": ".2f"}
    rows = [[str(r["t"]), *(format(r[k], spec) for k, spec in columns.items())] for r in cond["rows"]]
    return [
        f"## Use of z_sem by timestep: {cond['images']} held-out images",
        "",
        "L_simple with each image's own z_sem and with another image's, same x_t; z_sem share = 1 − own / "
        "other (0: the UNet ignores z_sem at that t). signal = sqrt(ᾱ_t), the weight of x0 in x_t. DDIM sets "
        "the layout at large t, so edits and random-x_T decodes need a share well above 0 there.",
        "",
        *_table(["t", "signal", "loss (own z_sem)", "loss (another's)", "z_sem share"], rows),
    ]


def _probes(probes: dict[str, Any], widths: dict[str, int]) -> list[str]:
    chance = probes["chance"]
    names = list(chance)
    header = ["features", *(f"{a} ({round(1 / c)})" for a, c in chance.items())]
    rows = []
    for row, accs in probes["rows"].items():
        label = "z_sem (512, Diff-AE baseline)" if row == "z_sem" else f"z_dis {row} ({widths.get(row, '?')})"
        rows.append([label, *(f"{accs[a]:.3f}" for a in names)])
    rows.append(["chance (1/n_values)", *(f"{chance[a]:.3f}" for a in names)])
    lines = [
        "## Linear probes (Table 1 analog): test accuracy",
        "",
        f"Multinomial logistic regression per (features, attribute), {probes['n_train']} train / "
        f"{probes['n_test']} test images over the whole dataset. Ideal: 1 on the diagonal, chance off it.",
        "",
        *_table(header, rows),
    ]
    if "gae_relative_error" in probes:
        lines += [
            "",
            f"GAE round trip z_sem → z_dis → ẑ_sem: relative error {probes['gae_relative_error']:.4f}",
        ]
    return lines


def _oracle(info: dict[str, Any]) -> list[str]:
    acc = info["heldout_accuracy"]
    source = "cached" if info.get("cached") else f"trained in {info['train_s']} s"
    n = info["settings"]["eval_images"]
    return [
        f"## Attribute oracle: held-out accuracy ({n} test-split images, {source})",
        "",
        *_table(list(acc), [[f"{v:.3f}" for v in acc.values()]]),
    ]


def _ceiling(recon: dict[str, Any]) -> list[str]:
    names = list(recon["inferred"]["accuracy"])
    rows = [
        [mode, *(f"{recon[mode]['accuracy'][a]:.3f}" for a in names), f"{recon[mode]['all_correct']:.3f}"]
        for mode in ("inferred", "random")
    ]
    return [
        f"Oracle on plain reconstructions (no GAE; {recon['images']} held-out images, S = {recon['steps']}): "
        "the ceiling for kept (inferred x_T) and for recombine (random x_T)",
        "",
        *_table(["x_T", *names, "all"], rows),
    ]


def _edits(edits: dict[str, Any]) -> list[str]:
    edit, rec = edits["edit"], edits["recombine"]
    rows = [
        [
            name,
            *(f"{r[key]:.3f}" for key in ("took", "kept", "all_correct", "unchanged", "took_true_code")),
            "–" if r["code_error"] is None else f"{r['code_error']:.2f}",
        ]
        for name, r in edit["swap"].items()
    ]
    acc = rec["accuracy"]
    return [
        f"## Edit accuracy (oracle on outputs): {edit['images']} test-split pairs, S = {edit['steps']}",
        "",
        "took: the swapped attribute shows the reference's value; kept: the other attributes show the "
        "source's (mean); all: every attribute as intended; unchanged: the swapped attribute still shows "
        "the source's value. Which half fails: took (true code) decodes the source's x_T with the z_sem of "
        "the true edited image (rendered with the source's nuisance), the most any GAE could get from this "
        "decoder; code error is ‖z_edit − z_true‖ / ‖z_source − z_true‖ (0: the GAE's swap gives the true "
        "code; 1: no closer than the unedited source).",
        "",
        *_table(["swap", "took", "kept", "all", "unchanged", "took (true code)", "code error"], rows),
        "",
        f"Recombine ({rec['images']} triples, S = {rec['steps']}, random x_T): each attribute from its image",
        "",
        *_table([*acc, "all"], [[*(f"{v:.3f}" for v in acc.values()), f"{rec['all_correct']:.3f}"]]),
        "",
        *_interpolation(edits.get("interpolate")),
        *_ceiling(edits["reconstruction"]),
    ]


def _interpolation(inter: dict[str, Any] | None) -> list[str]:
    if not inter:
        return []
    keys = ("kept", "at_a", "at_b")
    rows = [[name, *(f"{r[key]:.3f}" for key in keys)] for name, r in inter["attribute"].items()]
    return [
        f"Interpolation of one attribute ({inter['images']} test-split pairs a, b differing in every "
        f"attribute, α = {inter['alpha']}, S = {inter['steps']}, inferred x_T): kept: the other attributes "
        "still show a's value; at a / at b: the oracle reads the interpolated attribute as a's / b's value",
        "",
        *_table(["interpolated", *keys], rows),
        "",
    ]


def to_markdown(results: dict[str, Any]) -> str:
    env, settings, res = results["environment"], results["settings"], results["resolution"]
    lines = [
        f"# Evaluation: {results['model']} ({results['kind']}, {res}×{res})",
        "",
        f"Checkpoint `{results['checkpoint']}`; engine {env['engine']} on {env['device']} "
        f"({env['torch_threads']} torch threads); seed {settings['seed']}, dataset seed "
        f"{settings['dataset_seed']}; {env['date']}.",
        "",
        *_reconstruction(results["reconstruction"]),
        "",
        *([*conditioning_table(results["conditioning"]), ""] if results.get("conditioning") else []),
        *_probes(results["probes"], results.get("z_dis_widths") or {}),
    ]
    if results.get("oracle"):
        lines += ["", *_oracle(results["oracle"])]
    if results.get("edits"):
        lines += ["", *_edits(results["edits"])]
    if results.get("notes"):
        lines += ["", "## Notes", "", *(f"- {n}" for n in results["notes"])]
    timings = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in results["timings_s"].items())
    lines += ["", f"Timings: {timings}.", ""]
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: str | Path) -> str:
    """Write eval.json and eval.md into `out` (created if needed); return the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_FILE).write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    markdown = to_markdown(results)
    (out / MARKDOWN_FILE).write_text(markdown)
    return markdown
