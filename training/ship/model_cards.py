"""Write a model card beside every model in a weights folder, from its config and an evaluation.

    python -m training.ship.model_cards --weights weights --evaluation runs/eval/evaluation.json

Each card says what the model is, what it was trained on and under which terms (colorize-v1
and colorize-v2 are for non-commercial research only, and so is everything trained on them;
other data is named, its terms left for its owner to state), how it was trained
(steps, batch, resolution, hardware, time), how it is served (chroma gain, threshold) and
what it scores on validation (from ``training.evaluate``'s JSON). Everything comes from files
a command wrote; nothing is typed in by hand.
"""

import argparse
import json
import sys
from pathlib import Path

import specialists
from common.cli import run_command
from common.files import atomic_write_text
from discriminators import load_discriminator
from router import RouterError, load_router
from specialists.checkpoint import CheckpointError, read_config
from specialists.output import TEMPERATURE
from training.data import has_holdout_folder
from training.lineage import LEARNT_FROM

CARD = "MODEL_CARD.md"
RESEARCH_ONLY = (
    "**These weights inherit the research-only terms: use them for non-commercial research "
    "only.** The project's code is MIT; the weights are not. Labels come from the source "
    "collections and are noisy."
)
V1_TERMS = (
    "photos from UTKFace, Intel Image Classification, ImageNet sample images and "
    "clothing-dataset-small. Its terms: portraits (UTKFace) are for non-commercial research "
    "only and their copyright stays with the photos' owners; the Intel scenes carry no licence "
    "and are treated as research only; ImageNet samples fall under the ImageNet terms "
    "(non-commercial research); the clothing photos are CC0."
)
DATA_TERMS = {
    "colorize-v1": f"**colorize-v1** (`train/` split; {V1_TERMS})",
    "colorize-v2": (
        "**colorize-v2** (`train/` split): every colorize-v1 photo ("
        + V1_TERMS
        + ") plus people in scenes (Stanford 40 Actions, Clothing Co-Parsing, Leeds Sports "
        "Pose Extended: research use; a pedestrian-behaviour collection of unknown terms: "
        "research only) and everyday scenes (a Places365 subset: research and education only; "
        "Kaggle Dogs vs Cats: research only; Stanford Cars: non-commercial research only)."
    ),
}


def data_terms(root: str | None) -> str:
    """The card's data section: the known collection the model learnt from, and its terms."""
    name = Path(root or "").name
    if name in DATA_TERMS:
        return f"## Data and licence terms\n\nTrained on {DATA_TERMS[name]} {RESEARCH_ONLY}\n"
    return (
        f"## Data and licence terms\n\nTrained on the photos in `{root or 'an unrecorded folder'}`."
        " These weights carry the terms of those photos: state them here before sharing the "
        "weights.\n"
    )


def _hours(seconds: float | None) -> str:
    return "not recorded" if seconds is None else f"{seconds / 3600:.2f} h"


def _params(model: object) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M"


def _row(metrics: dict) -> str:
    agreement = metrics.get("agreement")
    return (
        f"{metrics['photos']} | {metrics['psnr']:.2f} | {metrics['ssim']:.3f} | "
        f"{metrics['colourfulness']:.1f} | {metrics['colourfulness_true']:.1f} | "
        f"{metrics['colourfulness_gap_pct']:+.1f}% | "
        f"{'n/a' if agreement is None else f'{agreement:.3f}'}"
    )


HEADER = (
    "| system | domain | photos | PSNR (dB) | SSIM | colourfulness | truth's | gap | "
    "top-1 agreement |\n|---|---|---|---|---|---|---|---|---|\n"
)


def _evaluation_section(evaluation: dict | None, systems: list[str]) -> str:
    if evaluation is None:
        return "## Validation metrics\n\nNot evaluated yet: run `python -m training.evaluate`.\n"
    rows = []
    for system in systems:
        for domain, metrics in evaluation["systems"].get(system, {}).items():
            rows.append(f"| {system} | {domain} | {_row(metrics)} |")
    return (
        f"## Validation metrics\n\nFrom `python -m training.evaluate` on "
        f"`{evaluation['data']}` ({evaluation['photos']} val photos, model size "
        f"{evaluation['size']} px, fallback threshold {evaluation['threshold']:.3f}); the full "
        f"table is in the project README.\n\n{HEADER}" + "\n".join(rows) + "\n"
    )


def specialist_card(path: Path, evaluation: dict | None) -> str:
    """The card of one ``specialists/<domain>.safetensors``."""
    config = read_config(path)
    domain, train = path.stem, config.get("train", {})
    generator = specialists.load_generator(path)
    disc = load_discriminator(path)
    gen_spec, disc_spec = config["models"]["generator"], config["models"]["discriminator"]
    fit = config.get("serve", {}).get("chroma_fit")
    gain = config.get("serve", {}).get("chroma_gain", 1.0)
    data = config.get("data", {})
    if fit:
        at1, chosen = fit["by_gain"]["1.0"], fit["by_gain"][str(gain)]
        serving = (
            f"Served with a chroma gain of **{gain:g}** (ab x {gain:g}), fitted by "
            f"`python -m training.ship.fit_chroma` on {fit['photos']} `{fit['split']}` photos: the "
            f"smallest gain bringing mean colourfulness to {fit['target']:.0%} of the truth's "
            f"({at1['colourfulness']:.1f} -> {chosen['colourfulness']:.1f}, truth "
            f"{fit['truth_colourfulness']:.1f}; PSNR {at1['psnr']:.2f} -> {chosen['psnr']:.2f} dB "
            f"on those photos{_fit_seen(data.get('root'))})."
        )
    else:
        serving = "Served as trained (no chroma gain fitted)."
    started = _start(train, data)
    return f"""# {domain} specialist

`{path.name}` ({path.stat().st_size / 2**20:.1f} MiB, {config.get("dtype", "float32")}):
the Pix2Pix generator that colours photos the router sends to **{domain}**, and the
discriminator that judges its colourings when the router is unsure.

{data_terms(data.get("root"))}
This specialist saw `train/{domain}` only ({data.get("train_images", "?")} photos){started}.

## Architecture

- Generator `{gen_spec["name"]}` {json.dumps(gen_spec["kwargs"])}: U-Net on an ImageNet-pretrained
  EfficientNet-Lite0 encoder (offline weights), L in, {_output(gen_spec)}; {_params(generator)}
  parameters.
- Discriminator `{disc_spec["name"]}` {json.dumps(disc_spec["kwargs"])}: conditional 70x70
  PatchGAN on (L, a, b); {_params(disc)} parameters.

## Training

`python -m training.train_specialist`, {_loss(train)}, Adam lr {train.get("lr")}
(beta1 {train.get("beta1")}, beta2 {train.get("beta2")}), normal(0, 0.02) init of the new
layers; {config.get("step")} steps of batch {train.get("batch_size")} at {config.get("size")} px
random crops/flips, {_phases(config)}, learning rate decayed
linearly from {train.get("lr_decay_from")} of the run; seed {train.get("seed")}. Hardware:
{config.get("hardware")}; training time {_hours(config.get("training_seconds"))} (pauses
between resumed sessions left out). Last in-training validation (first {train.get("num_val")}
{train.get("val_split", "val")} photos, {config.get("size")} px crops):
{_metrics_line(config.get("metrics", {}))}.

## Serving

{serving}

{_evaluation_section(evaluation, [f"specialist:{domain}", "fallback"])}"""


def _start(train: dict, data: dict) -> str:
    """How the run began: fine-tuned from a trained specialist (and what that learnt from), or
    fresh."""
    start = train.get("init_from")
    if not start:
        return ""
    before = [f"`{r['root']}` ({r['domain'] or 'all photos'})" for r in data.get(LEARNT_FROM, [])]
    learnt = f", which had learnt from {', '.join(before)}" if before else ""
    return f", starting from the specialist `{start}` (fine-tuned){learnt}"


def _fit_seen(root: str | None) -> str:
    """Whether the chroma fit's holdout photos were training photos of the run itself: they
    are in a layout without a holdout folder (a slice of train)."""
    if root is None or not Path(root).is_dir():
        return ""
    return "" if has_holdout_folder(root) else ", which the specialist was trained on"


def _output(gen_spec: dict) -> str:
    """What the generator predicts: ab through a tanh, or logits over ab bins."""
    kwargs = gen_spec["kwargs"]
    if not kwargs.get("num_bins"):
        return "Lab a/b out (tanh)"
    return (
        f"one logit per ab bin out ({kwargs['num_bins']} bins of 10 ab units, where the "
        f"training photos have colour), decoded by the annealed mean at T "
        f"{kwargs.get('temperature', TEMPERATURE)}"
    )


def _loss(train: dict) -> str:
    """The training loss, as the run's settings give it."""
    if train.get("output_space") == "bins":
        recipe = "Zhang et al.'s rebalanced cross-entropy over the ab bins"
    else:
        recipe = f"pix2pix recipe: L1 x {train.get('l1_weight')}"
    recipe += f" + {train.get('gan_mode')} GAN x {train.get('gan_weight')}"
    if train.get("colourfulness_weight"):
        recipe += f" + colourfulness shortfall x {train['colourfulness_weight']}"
    return recipe


def _phases(config: dict) -> str:
    """When the GAN loss was on, as the run's log recorded it (else as its final config says)."""
    train = config.get("train", {})
    alone = "cross-entropy only" if train.get("output_space") == "bins" else "L1 only"
    span = config.get("adversarial_steps")
    if span:
        return (
            f"the GAN loss on from about step {span[0]} to {span[1]} (as logged), {alone} otherwise"
        )
    return f"the first {train.get('warmup_steps')} steps {alone}"


def _metrics_line(metrics: dict) -> str:
    if not metrics:
        return "not recorded"
    return (
        f"PSNR {metrics['val_psnr']:.2f} dB (grayscale {metrics['val_psnr_gray']:.2f}), "
        f"colourfulness {metrics['val_colourfulness']:.1f} (truth "
        f"{metrics['val_colourfulness_true']:.1f})"
    )


def router_card(folder: Path, evaluation: dict | None) -> str:
    """The card of the ``router/`` folder."""
    router = load_router(folder)
    config = router.config
    training, data = config.get("training", {}), config.get("data", {})
    metrics = config.get("metrics", {})
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20
    seconds = sum(row.get("seconds", 0.0) for row in training.get("history", []))
    routing = (evaluation or {}).get("routing")
    routed = (
        f"On the shipped weights, `python -m training.evaluate` measured routing accuracy "
        f"**{routing['accuracy']:.4f}** on {evaluation['photos']} val photos, "
        f"{routing['fallback_fraction']:.1%} of them below the threshold."
        if routing
        else "Not evaluated yet: run `python -m training.evaluate`."
    )
    return f"""# Router

`router/` ({size:.1f} MiB: `router.safetensors` float16 network, `router.faiss` kNN index,
their JSON configs): decides which specialist colours a grayscale photo, and how sure it is.

{data_terms(data.get("root"))}
## Architecture

`{training.get("arch")}`: ImageNet-pretrained EfficientNet-Lite0 (offline weights) on the
grayscale L channel at {training.get("size")} px, its last {training.get("train_blocks")}
block(s) and a {len(router.domains)}-way head ({", ".join(router.domains)}) fine-tuned;
{_params(router.net)} parameters. Its embeddings of the {len(router.index)} training photos
sit in a faiss index
(PCA to {metrics.get("index_dim")} dims, float16) for the kNN vote, the nearest training
photos shown to users and the out-of-distribution distance.

## Training and calibration

`python -m training.train_router`: {training.get("epochs")} epochs (AdamW lr
{training.get("lr")}, batch {training.get("batch_size")}, {training.get("views")} views per
photo) on {data.get("train_photos")} photos; {seconds / 60:.0f} min for the fine-tuning
stage (on the cached frozen trunk, built once beforehand) on {training.get("device", "cpu")}
(2 cores). Temperature {router.calibration.temperature:.3f},
kNN weight {router.calibration.knn_weight:.3f} and the fallback threshold
**{router.threshold:.3f}** (the lowest confidence keeping routed accuracy at
{metrics.get("threshold_target_accuracy")}) were fitted on {data.get("calibration_photos")}
photos held out of train (`{data.get("calibrated_on")}`), never trained on.

## Validation metrics

From training: accuracy {metrics.get("accuracy", float("nan")):.4f} on {data.get("val_photos")}
val photos, ECE {metrics.get("ece_before", float("nan")):.4f} before calibration and
{metrics.get("ece_after", float("nan")):.4f} after; {metrics.get("fallback_fraction", 0):.1%}
of val photos fall back. {routed}
"""


def write_cards(weights: Path, evaluation: dict | None) -> list[Path]:
    """Write ``router/MODEL_CARD.md`` and ``specialists/<domain>.md``; returns their paths."""
    written = []
    router_dir = weights / "router"
    atomic_write_text(router_dir / CARD, router_card(router_dir, evaluation))
    written.append(router_dir / CARD)
    for path in sorted((weights / "specialists").glob("*.safetensors")):
        card = path.with_suffix(".md")
        atomic_write_text(card, specialist_card(path, evaluation))
        written.append(card)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship.model_cards", description=__doc__
    )
    parser.add_argument("--weights", required=True, type=Path, help="weights folder")
    parser.add_argument("--evaluation", type=Path, help="training.evaluate's --json file")
    args = parser.parse_args(argv)

    def run() -> None:
        evaluation = json.loads(args.evaluation.read_text()) if args.evaluation else None
        written = write_cards(args.weights, evaluation)
        for path in written:
            print(f"wrote {path}")

    return run_command(run, errors=(CheckpointError, RouterError, KeyError, json.JSONDecodeError))


if __name__ == "__main__":
    sys.exit(main())
